"""The registry under real faults on SQLite: a locked database, a key written twice, a
rollout closed twice, counts flushed twice; its file's permissions; URLs shown masked."""

from __future__ import annotations

import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from conveyor.errors import NotFoundError, RegistryConflictError
from conveyor.registry import Registry, RolloutState, WorkerRecord, masked_url
from conveyor.registry._retry import is_retriable
from conveyor.registry._store import Store

pytestmark = pytest.mark.unit


def _locked_engine(path: Path) -> tuple[sqlite3.Connection, Store]:
    """A store that does not wait for locks, and a raw connection holding the write lock."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    setup.close()
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    return holder, Store(engine, "t")


def _caught(store: Store, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        with store.read() as session:
            session.execute(text(statement))
    return caught.value


def test_sqlite_errors_are_classified_by_their_code(tmp_path: Path) -> None:
    holder, store = _locked_engine(tmp_path / "r.db")
    busy = _caught(store, "INSERT INTO t VALUES (1, 'a')")
    assert getattr(busy.orig, "sqlite_errorname", None) == "SQLITE_BUSY"
    assert is_retriable(busy)
    holder.execute("INSERT INTO t VALUES (1, 'a')")
    holder.execute("COMMIT")
    duplicate = _caught(store, "INSERT INTO t VALUES (1, 'b')")
    assert is_retriable(duplicate)  # a unique key written twice: the next attempt re-reads
    assert not is_retriable(_caught(store, "INSERT INTO t VALUES (2, NULL)"))
    assert not is_retriable(_caught(store, "SELECT * FROM nowhere"))
    store.engine.dispose()


def test_a_write_waits_out_a_lock_and_a_real_error_is_not_retried(tmp_path: Path) -> None:
    holder, store = _locked_engine(tmp_path / "r.db")
    attempts: list[int] = []

    def work(session: Session) -> None:
        attempts.append(1)
        session.execute(text("INSERT INTO t VALUES (:n, 'mine')"), {"n": len(attempts) + 10})

    release = threading.Timer(0.15, lambda: holder.execute("COMMIT"))
    release.start()
    store.write(work)  # SQLITE_BUSY until the holder commits, then it goes through
    release.join()
    assert len(attempts) > 1
    attempts.clear()
    with pytest.raises(DBAPIError, match="no such table"):
        store.write(lambda session: attempts.append(1) or session.execute(text("SELECT * FROM x")))
    assert attempts == [1]
    store.engine.dispose()


def test_a_rollout_closes_once_and_the_second_closer_is_told(registry: Registry) -> None:
    v1, v2 = (
        registry.register_version("d", task="classification", base_model="m", recipe={}).version
        for _ in range(2)
    )
    registry.move_alias("d", "production", v1, reason="first")
    rollout = registry.start_rollout("d", v2, kind="promotion", reason="go", expected=v1)
    closed = registry.finish_rollout(rollout.id, RolloutState.COMPLETED, reason="healthy")
    assert closed.state == RolloutState.COMPLETED and closed.finished_at is not None
    with pytest.raises(RegistryConflictError, match="already completed"):
        registry.finish_rollout(rollout.id, RolloutState.ROLLED_BACK, reason="late", revert=True)
    assert registry.rollouts("d")[0] == closed  # the loser changed nothing
    assert registry.alias("d", "production") == v2
    with pytest.raises(NotFoundError):
        registry.finish_rollout(999, RolloutState.FAILED, reason="x")


def test_usage_adds_up_and_heartbeats_replace(registry: Registry) -> None:
    registry.add_usage("2026-12-03", {"a": (3, 1)})
    registry.add_usage("2026-12-03", {"a": (2, 0), "b": (1, 1)})
    registry.add_usage("2026-12-04", {"a": (7, 7)})
    assert registry.usage("2026-12-03") == {"a": (5, 1), "b": (1, 1)}
    now = datetime.now(UTC)
    beat = WorkerRecord("w1", "d", 1, "h", now, now, "d:v1", None, None, None, {}, {"n": 1})
    registry.heartbeat(beat)
    later = WorkerRecord("w1", "d", 1, "h", now, now, "d:v2", "d:v1", None, 4, {}, {"n": 2})
    registry.heartbeat(later)
    assert registry.workers("d") == [later]
    registry.forget_worker("w1")
    assert registry.workers() == []


def test_the_sqlite_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "registry.db"
    registry = Registry.from_url(f"sqlite:///{path}", actor="t")
    registry.audit("note")  # a write: the WAL and shared-memory files exist now
    for created in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert stat.S_IMODE(created.stat().st_mode) == 0o600, created
    for folder in (path.parent, path.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    registry.close()


def test_an_old_world_readable_registry_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    folder.chmod(0o777)
    path = folder / "registry.db"
    Registry.from_url(f"sqlite:///{path}", actor="t").close()
    path.chmod(0o644)
    registry = Registry.from_url(f"sqlite:///{path}", actor="t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o775
    registry.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@db:5432/r", "postgresql://u:***@db:5432/r"),
        ("postgresql+psycopg://u:p%40ss@db/r", "postgresql+psycopg://u:***@db/r"),
        ("postgresql://u@db/r?password=s3cret", "postgresql://u@db/r?password=%2A%2A%2A"),
        ("postgresql://nobody@127.0.0.1:1/none", "postgresql://nobody@127.0.0.1:1/none"),
        ("sqlite:////tmp/registry.db", "sqlite:////tmp/registry.db"),
        ("not a url://u:s3cret@host", "not a url://u:***@host"),
    ],
)
def test_urls_are_shown_with_the_password_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_opening_a_new_registry_waits_out_a_writer_instead_of_failing(tmp_path: Path) -> None:
    """A fresh file is still in rollback-journal mode; while another connection holds its
    write lock, SQLite refuses the switch to WAL at once (no busy handler: it could deadlock).
    Opening the registry must wait for the writer, not fail with "database is locked" (one of
    eight processes opening a new registry together did, in CI)."""
    path = tmp_path / "registry.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        registry = Registry.from_url(f"sqlite:///{path}", actor="t")
        with registry.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        registry.close()
    finally:
        release.join()
        holder.close()
    assert mode == "wal"
