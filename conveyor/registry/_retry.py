"""Which failed write transactions are worth running again: decided by the driver's error
class and code (SQLSTATE on Postgres, the extended result code on SQLite), never by message text.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError

__all__ = ["RETRIABLE_SQLITE", "RETRIABLE_SQLSTATES", "is_retriable", "sqlstate"]

# A lost race the next attempt can win: serialization failure, deadlock, a lock not granted,
# and a unique violation (two writers inserting the same key, e.g. an alias's first pointer).
RETRIABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})
# SQLite: the database is busy or a table is locked (after the busy timeout), or the same
# unique/primary key was inserted twice.
RETRIABLE_SQLITE = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
_RETRIABLE_SQLITE_CONSTRAINTS = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
)


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a psycopg error (None for other drivers)."""
    code = getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


def _sqlite_retriable(error: sqlite3.Error) -> bool:
    name = getattr(error, "sqlite_errorname", "")  # e.g. SQLITE_BUSY_SNAPSHOT
    if isinstance(error, sqlite3.IntegrityError):
        return name in _RETRIABLE_SQLITE_CONSTRAINTS
    if isinstance(error, sqlite3.OperationalError):
        return any(name == code or name.startswith(code + "_") for code in RETRIABLE_SQLITE)
    return False


def is_retriable(exc: BaseException) -> bool:
    """True when ``exc`` (as SQLAlchemy raised it) is a lost race rather than a real error."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return _sqlite_retriable(original)
    code = sqlstate(original)
    return code is not None and code in RETRIABLE_SQLSTATES
