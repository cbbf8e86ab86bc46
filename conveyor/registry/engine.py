"""Engines for the registry: SQLite made safe for many writers, or any SQLAlchemy URL.

SQLite: WAL journal, a long busy timeout, and every write transaction opened with
``BEGIN IMMEDIATE`` so that two writers queue for the lock instead of failing when a reader
tries to upgrade; a read (inside :func:`deferred_reads`) opens with a plain ``BEGIN``, which
in WAL mode reads its snapshot without waiting for any writer, so a held write lock never
stalls a read; the file is created readable by its owner only (0600), in
a folder nobody else may write to. Postgres: plain psycopg 3.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "create_registry_engine",
    "deferred_reads",
    "is_sqlite",
    "masked_url",
    "normalize_url",
    "prepare_sqlite_file",
]

SQLITE_BUSY_TIMEOUT_S = 60
FILE_MODE = 0o600
FOLDER_MODE = 0o700
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")

log = logging.getLogger(__name__)
_READING: ContextVar[bool] = ContextVar("conveyor_registry_reading", default=False)


@contextmanager
def deferred_reads() -> Iterator[None]:
    """Transactions begun inside take no write lock (SQLite); only reads belong here."""
    token = _READING.set(True)
    try:
        yield
    finally:
        _READING.reset(token)


def masked_url(url: str) -> str:
    """``url`` fit to print or log: a password (in the URL or its query) shows as ``***``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads (or a bad port): still
        # never show what looks secret
        return _PASSWORD_IN_URL.sub(r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for bare ``postgresql://`` URLs (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if _READING.get() else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """Switch the file to WAL (once; the mode is kept in the file), waiting out other writers.

    The switch needs the exclusive lock. When another connection holds a write lock on a
    file still in rollback-journal mode (many processes opening a new registry at once),
    SQLite answers SQLITE_BUSY at once instead of calling the busy handler, since waiting
    could deadlock; so the wait is ours: retry with jittered backoff up to the busy timeout.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0, delay))
        delay = min(0.25, delay * 2)


def _private_folder(folder: Path) -> None:
    """Create missing folders 0700; an existing one that anyone may write to (and that has
    no sticky bit, like /tmp) loses that permission."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=FOLDER_MODE, exist_ok=True)
    mode = folder.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        try:
            os.chmod(folder, stat.S_IMODE(mode) & ~stat.S_IWOTH)
            log.warning("the registry's folder %s was world-writable; no longer", folder)
        except PermissionError:
            log.warning("the registry's folder %s is world-writable and not ours", folder)


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (its WAL and shared-memory files
    take the same mode); tighten an existing one that others may read."""
    _private_folder(path.parent)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
        return
    except FileExistsError:
        pass
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~FILE_MODE:
        try:
            os.chmod(path, mode & FILE_MODE)
        except PermissionError:  # someone else's file: say so, but still open it
            log.warning("%s is readable by others and not ours to change (mode %o)", path, mode)


POSTGRES_CONNECT_TIMEOUT_S = 3


def create_registry_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            prepare_sqlite_file(Path(parsed.database).expanduser())
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    # A server that is down or unreachable fails a connect in seconds, never a TCP timeout's
    # minutes: callers (a serving worker's key check) answer 503 and try again.
    connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S} if _is_postgres(parsed) else {}
    return create_engine(url, pool_pre_ping=True, pool_timeout=5, connect_args=connect_args)


def _is_postgres(parsed: Any) -> bool:
    return str(parsed.get_backend_name()).startswith("postgres")
