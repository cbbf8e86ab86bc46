"""Bring a registry database to the newest schema, safely from many processes at once."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

__all__ = ["MIGRATIONS_DIR", "head_revision", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x636F6E76  # "conv": one advisory lock id for conveyor migrations

log = logging.getLogger(__name__)


def _alembic_config() -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions under {MIGRATIONS_DIR}")
    return head


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # beside the 0600 database
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _upgrade(connection: Connection) -> None:
    if _current_revision(connection) == head_revision():
        return
    config = _alembic_config()
    config.attributes["connection"] = connection
    log.info("migrating registry schema to %s", head_revision())
    command.upgrade(config, "head")


def upgrade_to_head(engine: Engine) -> None:
    """Migrate under a lock: a file lock for SQLite, an advisory lock for Postgres."""
    with engine.connect() as probe:
        if _current_revision(probe) == head_revision():
            return
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database else None
        if lock_path is None or database == ":memory:":
            with engine.begin() as connection:
                _upgrade(connection)
            return
        with _file_lock(lock_path), engine.begin() as connection:
            _upgrade(connection)
        return
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            connection.commit()
        try:
            with connection.begin():
                _upgrade(connection)
        finally:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                connection.commit()
