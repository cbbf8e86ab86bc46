"""One Postgres capture sink as a worker's capture thread writes it: rows held, then copied.

The capture thread (:class:`serving.worker.capture.CaptureRecorder`) adds rows and, when they
are due, calls :meth:`PostgresSink.write`: one ``COPY`` of everything held, in one
transaction, on a connection opened on first use (the table is created then if missing).
Every wait is bounded (connect, statement and TCP timeouts), so a database that is down or
stops answering holds up only this thread, never a request. A failed write raises; the
recorder drops and counts what was held and calls again after ``RETRY_SECONDS``, on a new
connection. Counting errs one way only: a batch whose commit reached Postgres but whose
acknowledgement was lost with the connection (cut at that moment) is counted lost though the
rows are there; no row is ever counted written that was not.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.capture_format import CAPTURE_SCHEMA
from conveyor.capture_sink import CAPTURE_TABLE, create_table_sql, libpq_url

__all__ = ["RETRY_SECONDS", "PostgresSink"]

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # after a failed write, the sink is tried again (a new connection) this late
CONNECT_SECONDS = 3
STATEMENT_MS = 10_000
_COLUMNS = [field.name for field in CAPTURE_SCHEMA]
_COPY = f"COPY {CAPTURE_TABLE} ({', '.join(_COLUMNS)}) FROM STDIN"
_LOCK = 0x636F6E76  # an advisory lock: replicas starting together create the table once


class PostgresSink:
    """Rows waiting for one database, and the connection that takes them."""

    def __init__(self, url: str, deployment: str) -> None:
        self.url = url
        self.deployment = deployment
        self.rows: list[dict[str, Any]] = []
        self.retry_at = 0.0
        self.last_write = time.monotonic()
        self._conn: Any = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows

    def due(self, every: float, at_most: int) -> bool:
        waited = time.monotonic() - self.last_write >= every
        return bool(self.rows) and (waited or len(self.rows) >= at_most)

    def resting(self) -> bool:
        """Whether the sink failed a moment ago: rows are dropped until ``retry_at``."""
        return time.monotonic() < self.retry_at

    def write(self) -> int:
        """Copy every held row into the table; how many. Raises when the database fails
        (the rows stay held: :meth:`failed` drops them)."""
        self.last_write = time.monotonic()
        rows = self.rows
        if not rows:
            return 0
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row([row[name] for name in _COLUMNS])
        self.rows = []
        return len(rows)

    def failed(self) -> int:
        """Drop the held rows and the connection, rest until ``RETRY_SECONDS`` from now;
        how many rows were dropped."""
        lost, self.rows = len(self.rows), []
        self.close()
        self.retry_at = time.monotonic() + RETRY_SECONDS
        return lost

    def delete_older(self, days: int) -> int:
        """Delete the deployment's rows older than ``days``; how many."""
        oldest = datetime.now(UTC) - timedelta(days=days)
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {CAPTURE_TABLE} WHERE deployment = %s AND ts < %s",
                (self.deployment, oldest),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection the server already cut
                log.debug("closing the capture's connection failed", exc_info=True)

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        conn = psycopg.connect(
            libpq_url(self.url),
            autocommit=True,
            connect_timeout=CONNECT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_MS}",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=STATEMENT_MS,
            application_name="conveyor-capture",
        )
        try:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                for statement in create_table_sql():
                    cursor.execute(statement)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn
