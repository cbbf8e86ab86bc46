"""The registry's safety nets on a real PostgreSQL: append-only tables refuse TRUNCATE too,
and lost races are told apart from real errors by their SQLSTATE."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from conveyor.registry import Registry
from conveyor.registry._retry import is_retriable, sqlstate
from conveyor.registry._store import Store
from conveyor.registry.engine import create_registry_engine
from conveyor.registry.migrate import _alembic_config

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

APPEND_ONLY = ("audit_log", "alias_history")


def _refused(registry: Registry, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        with registry.engine.begin() as connection:
            connection.execute(text(statement))


def test_postgres_registry_is_append_only_even_to_truncate(postgres_url: str) -> None:
    registry = Registry.from_url(postgres_url, actor="t")
    version = registry.register_version("d", task="classification", base_model="m", recipe={})
    registry.move_alias("d", "production", version.version, reason="keep me")
    for table in APPEND_ONLY:
        for statement in (f"UPDATE {table} SET reason = 'x'", f"DELETE FROM {table}"):
            _refused(registry, statement)
        _refused(registry, f"TRUNCATE {table}")
    _refused(registry, "TRUNCATE audit_log, alias_history CASCADE")
    assert registry.audit_log()[0].reason == "keep me"
    assert [move.reason for move in registry.alias_history("d")] == ["keep me"]
    registry.close()


def _migrate(connection: Connection, target: str, up: bool) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    (command.upgrade if up else command.downgrade)(config, target)


def test_the_truncate_guard_is_migration_0005(postgres_url: str) -> None:
    registry = Registry.from_url(postgres_url, actor="t")
    registry.audit("note", reason="keep me")
    with registry.engine.begin() as connection:
        _migrate(connection, "0004", up=False)
    with registry.engine.connect() as connection:  # without 0005, TRUNCATE goes through
        with connection.begin() as transaction:
            connection.execute(text("TRUNCATE audit_log"))
            assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar() == 0
            transaction.rollback()
    with registry.engine.begin() as connection:
        _migrate(connection, "head", up=True)
    _refused(registry, "TRUNCATE audit_log")
    assert [entry.reason for entry in registry.audit_log()] == ["keep me"]
    registry.close()


def _error(connection: Connection, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        with connection.begin():
            connection.execute(text(statement))
    return caught.value


def _deadlock(url: str) -> DBAPIError:
    """Two transactions each lock a row the other then wants: Postgres aborts one."""
    engine = create_engine(url)
    caught: list[DBAPIError] = []
    locked = threading.Barrier(2)

    def side(first: int, second: int) -> None:
        try:
            with engine.begin() as connection:
                connection.execute(text("UPDATE race SET v = v + 1 WHERE id = :i"), {"i": first})
                locked.wait(timeout=10)
                connection.execute(text("UPDATE race SET v = v + 1 WHERE id = :i"), {"i": second})
        except DBAPIError as exc:
            caught.append(exc)

    threads = [threading.Thread(target=side, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    engine.dispose()
    assert len(caught) == 1
    return caught[0]


def _serialization_failure(url: str) -> DBAPIError:
    engine = create_engine(url)
    with engine.connect() as reader, engine.connect() as writer:
        with pytest.raises(DBAPIError) as caught:
            with reader.begin():
                reader.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                reader.execute(text("SELECT v FROM race WHERE id = 1"))
                with writer.begin():
                    writer.execute(text("UPDATE race SET v = v + 1 WHERE id = 1"))
                reader.execute(text("UPDATE race SET v = v + 1 WHERE id = 1"))
    engine.dispose()
    return caught.value


def test_lost_races_are_told_from_real_errors_by_sqlstate(postgres_url: str) -> None:
    engine = create_registry_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE race (id int PRIMARY KEY, v int NOT NULL)"))
        connection.execute(text("INSERT INTO race VALUES (1, 0), (2, 0)"))
    with engine.connect() as connection:
        duplicate = _error(connection, "INSERT INTO race VALUES (1, 0)")
        missing_value = _error(connection, "INSERT INTO race VALUES (3, NULL)")
        no_table = _error(connection, "SELECT * FROM nowhere")
    races = [duplicate, _deadlock(postgres_url), _serialization_failure(postgres_url)]
    assert [sqlstate(exc.orig) for exc in races] == ["23505", "40P01", "40001"]
    assert [is_retriable(exc) for exc in races] == [True, True, True]
    assert [sqlstate(exc.orig) for exc in (missing_value, no_table)] == ["23502", "42P01"]
    assert not is_retriable(missing_value) and not is_retriable(no_table)
    engine.dispose()


def test_a_write_that_loses_a_serialization_race_is_run_again(postgres_url: str) -> None:
    engine = create_registry_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE race (id int PRIMARY KEY, v int NOT NULL)"))
        connection.execute(text("INSERT INTO race VALUES (1, 0)"))
    attempts: list[int] = []

    def work(session: Session) -> int:
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        seen = session.execute(text("SELECT v FROM race WHERE id = 1")).scalar_one()
        if not attempts:  # another writer commits between our read and our write, once
            with engine.begin() as other:
                other.execute(text("UPDATE race SET v = v + 10 WHERE id = 1"))
        attempts.append(seen)
        session.execute(text("UPDATE race SET v = :v WHERE id = 1"), {"v": seen + 1})
        return int(seen) + 1

    assert Store(engine, "t").write(work) == 11
    assert attempts == [0, 10]  # the first attempt failed with 40001, the second won
    with engine.connect() as connection:
        assert connection.execute(text("SELECT v FROM race")).scalar() == 11
    engine.dispose()
