"""Eight real processes write into one registry at once: nothing fails, nothing is lost.

Each worker, released together from a barrier, registers versions of a shared
deployment, moves its ``production`` alias with compare-and-set (retrying when
another worker won), and appends audit entries. Afterwards the numbers must be
exactly 1..N with no gaps, the alias history must form one unbroken chain, and
every audit entry must be there. Runs on SQLite (a fresh file, so the schema
migration itself races too) and on the machine's PostgreSQL.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from conveyor.errors import RegistryConflictError
from conveyor.registry import Registry
from tests.conftest import port_open

pytestmark = pytest.mark.integration

WORKERS = 8
ROUNDS = 12
DEPLOYMENT = "race"
PG_ADMIN_URL = os.environ.get(
    "CONVEYOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _worker(url: str, worker: int, barrier: Any, errors: Any) -> None:
    try:
        barrier.wait(timeout=60)
        registry = Registry.from_url(url, actor=f"worker-{worker}")
        for round_index in range(ROUNDS):
            version = registry.register_version(
                DEPLOYMENT, task="classification", base_model="minilm", recipe={"w": worker}
            ).version
            while True:
                current = registry.alias(DEPLOYMENT, "production")
                try:
                    registry.move_alias(
                        DEPLOYMENT,
                        "production",
                        version,
                        reason=f"w{worker}r{round_index}",
                        expected=current,
                    )
                    break
                except RegistryConflictError:
                    continue
            registry.audit(
                "worker.note", deployment=DEPLOYMENT, version=version, reason=f"w{worker}"
            )
        registry.close()
    except BaseException as exc:  # report every failure to the parent
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")


def _hammer(url: str) -> None:
    context = mp.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    errors = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, i, barrier, errors)) for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    assert [p.exitcode for p in processes] == [0] * WORKERS


def _check(url: str) -> None:
    registry = Registry.from_url(url, actor="checker")
    total = WORKERS * ROUNDS
    versions = registry.list_versions(DEPLOYMENT, limit=10 * total)
    assert sorted(v.number for v in versions) == list(range(1, total + 1))
    history = registry.alias_history(DEPLOYMENT, "production")
    assert len(history) == total
    previous = None
    for move in history:  # one unbroken chain: no move was lost or overwritten
        assert move.from_version == previous
        previous = move.to_version
    assert registry.alias(DEPLOYMENT, "production") == previous
    log = registry.audit_log(DEPLOYMENT)
    counts: dict[str, int] = {}
    for entry in log:
        counts[entry.action] = counts.get(entry.action, 0) + 1
    assert counts == {"version.registered": total, "alias.moved": total, "worker.note": total}
    per_worker = {f"worker-{i}": 0 for i in range(WORKERS)}
    for entry in log:
        if entry.action == "worker.note":
            per_worker[entry.actor] += 1
    assert set(per_worker.values()) == {ROUNDS}
    if registry.engine.dialect.name == "sqlite":
        with registry.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    registry.close()


def test_eight_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _hammer(url)
    _check(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"cannot create a test database on {PG_ADMIN_URL}: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_eight_processes_on_postgres(postgres_url: str) -> None:
    _hammer(postgres_url)
    _check(postgres_url)


@pytest.mark.postgres
def test_postgres_registry_is_append_only_too(postgres_url: str) -> None:
    registry = Registry.from_url(postgres_url, actor="t")
    registry.audit("note", reason="keep me")
    with pytest.raises(Exception, match="append-only"):
        with registry.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log"))
    assert registry.audit_log()[0].reason == "keep me"
    registry.close()
