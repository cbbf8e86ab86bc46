"""Questions over the captured traffic, answered by DuckDB over the capture's Parquet files.

The connection sees one table, ``traffic`` (the columns of
:data:`conveyor.capture_format.CAPTURE_SCHEMA`), and nothing else: it is in memory, may read
only the deployment's published capture files (``allowed_paths``), has external access
turned off and its configuration locked, and every statement it runs is checked to be one
``SELECT`` first. So ``--sql`` and ``--where`` can ask anything of the capture and can
neither write nor read another file.

Versions whose ``serving.capture.sink`` is a Postgres database have their rows read out of
it first (:mod:`serving.control.capture_postgres`: fixed SQL, the deployment, version, app
and ``--since`` pushed down, a read-only session) into an Arrow table that joins the
Parquet files in ``capture``; DuckDB never connects to Postgres itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.capture_format import CAPTURE_SCHEMA, capture_root, published_files
from conveyor.capture_sink import is_postgres
from conveyor.errors import ConveyorError
from conveyor.registry import Registry
from conveyor.serving_spec import serving_spec_of
from serving.control.capture_postgres import read_postgres_capture

__all__ = [
    "TrafficError",
    "capture_connection",
    "capture_sinks",
    "execute",
    "TrafficQuery",
    "parse_since",
    "run_sql",
    "select_rows",
    "summarize",
]

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class TrafficError(ConveyorError):
    """A traffic question that cannot be asked (bad SQL, a write, a file outside)."""


def parse_since(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``7d`` -> a timedelta; TrafficError naming --since else."""
    match = _SINCE.match(text)
    if match is None:
        raise TrafficError(f"--since {text!r}: expected a number and s, m, h or d (e.g. 2h)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class TrafficQuery:
    """Which captured rows: a deployment's, narrowed by version, app, age and a condition."""

    deployment: str
    version: str | None = None
    app: str | None = None
    since: timedelta | None = None
    where: str | None = None
    sinks: tuple[str, ...] = ()  # Postgres sinks holding some of its rows (beside the files)

    def start(self, now: datetime) -> datetime | None:
        return now - self.since if self.since is not None else None

    def full_version(self) -> str | None:
        """``v3`` means ``DEPLOYMENT:v3``; a full version is taken as it is."""
        if self.version is None or ":" in self.version:
            return self.version
        return f"{self.deployment}:{self.version}"

    def filters(self, now: datetime) -> str:
        """The condition on the capture's rows (``--where`` in parentheses), values quoted."""
        clauses = ["TRUE"]
        for column, value in (("version", self.full_version()), ("app", self.app)):
            if value is not None:
                clauses.append(f"{column} = {_quoted(value)}")
        start = self.start(now)
        if start is not None:
            clauses.append(f"ts >= TIMESTAMPTZ {_quoted(start.isoformat())}")
        if self.where:
            clauses.append(f"({self.where})")
        return " AND ".join(clauses)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def capture_sinks(registry: Registry, deployment: str) -> tuple[str, ...]:
    """The Postgres sinks the deployment's versions capture to (none: Parquet only)."""
    sinks = {serving_spec_of(r).capture.sink for r in registry.list_versions(deployment)}
    return tuple(sorted(sink for sink in sinks if is_postgres(sink)))


def _postgres_rows(query: TrafficQuery, start: datetime | None, whole: bool) -> Any:
    """The rows the query's Postgres sinks hold, as one Arrow table (None: no sinks)."""
    import pyarrow as pa

    if not query.sinks:
        return None
    version, app = (None, None) if whole else (query.full_version(), query.app)
    tables = [
        read_postgres_capture(url, query.deployment, version, app, start) for url in query.sinks
    ]
    return pa.concat_tables(tables)


@contextmanager
def capture_connection(home: Path, query: TrafficQuery, whole: bool = False) -> Iterator[Any]:
    """A DuckDB connection whose table ``traffic`` holds the rows ``query`` selects (the
    deployment's capture since ``query.since`` is ``capture``: with ``whole``, a Postgres
    sink is read for every version and app); it can read no other file and write none."""
    import duckdb
    import pyarrow as pa

    now = datetime.now(UTC)
    files = [
        str(p) for p in published_files(capture_root(home, query.deployment), query.start(now))
    ]
    stored = _postgres_rows(query, query.start(now), whole)
    con = duckdb.connect(":memory:")
    try:
        sources = []
        if files:
            con.execute("SET allowed_paths = ?", [files])
            sources.append(f"SELECT * FROM read_parquet([{', '.join(map(_quoted, files))}])")
        if stored is not None:
            con.register("_postgres", stored)
            sources.append("SELECT * FROM _postgres")
        if not sources:
            con.register("_empty", pa.Table.from_pylist([], schema=CAPTURE_SCHEMA))
            sources.append("SELECT * FROM _empty")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(f"CREATE VIEW capture AS {' UNION ALL BY NAME '.join(sources)}")
        narrowing = f"SELECT * FROM capture WHERE {query.filters(now)}"
        _checked(narrowing, "--where")
        execute(con, f"CREATE VIEW traffic AS {narrowing}", what="--where", checked=True)
        yield con
    finally:
        con.close()


def _checked(sql: str, what: str = "--sql") -> str:
    """``sql`` if it is one SELECT statement; TrafficError saying what it is otherwise."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise TrafficError(f"{what}: the SQL does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise TrafficError(f"{what}: one SELECT statement at a time, not {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise TrafficError(
            f"{what}: only SELECT reads the capture; a {kind.name} statement is refused"
        )
    return sql


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def execute(
    con: Any, sql: str, what: str = "--sql", checked: bool = False
) -> tuple[list[str], list[Any]]:
    import duckdb

    try:
        cursor = con.execute(sql if checked else _checked(sql, what))
        columns = [d[0] for d in cursor.description] if cursor.description else []
        return columns, cursor.fetchall()
    except duckdb.PermissionException as exc:
        raise TrafficError(
            f"{what}: refused, it may read only the capture: {_first_line(exc)}"
        ) from exc
    except duckdb.Error as exc:
        raise TrafficError(f"{what}: {_first_line(exc)}") from exc


def run_sql(home: Path, query: TrafficQuery, sql: str) -> tuple[list[str], list[Any]]:
    """Any one SELECT over ``traffic`` (the rows ``query`` selects) or ``capture`` (all)."""
    _checked(sql)
    with capture_connection(home, query, whole=True) as con:
        return execute(con, sql)


def select_rows(home: Path, query: TrafficQuery, columns: str = "*") -> list[dict[str, Any]]:
    """The rows ``query`` selects, oldest first."""
    with capture_connection(home, query) as con:
        names, rows = execute(con, f"SELECT {columns} FROM traffic ORDER BY ts, id", "query")
    return [dict(zip(names, row, strict=True)) for row in rows]


SUMMARY_SQL = """
SELECT version, app,
       count(*) AS requests,
       count(*) FILTER (WHERE status >= 500) AS errors,
       count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS refused,
       quantile_cont(latency_ms, 0.5) AS p50_ms,
       quantile_cont(latency_ms, 0.99) AS p99_ms,
       sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out,
       count(*) FILTER (WHERE cache_hit) AS cache_hits,
       min(ts) AS first, max(ts) AS last
FROM traffic GROUP BY version, app ORDER BY version, app
"""
FINISH_SQL = """
SELECT version, app, finish_reason, count(*) AS n FROM traffic
WHERE finish_reason IS NOT NULL
GROUP BY version, app, finish_reason ORDER BY n DESC, finish_reason
"""


def summarize(home: Path, query: TrafficQuery) -> list[dict[str, Any]]:
    """One row per version and app: requests, errors (5xx), refused (4xx), p50/p99 latency,
    tokens in and out, cache hits, and the finish reasons with their counts."""
    with capture_connection(home, query) as con:
        names, rows = execute(con, SUMMARY_SQL, "summary")
        _, finishes = execute(con, FINISH_SQL, "summary")
    summary = [dict(zip(names, row, strict=True)) for row in rows]
    for row in summary:
        row["finish_reasons"] = {
            reason: n for version, app, reason, n in finishes
            if (version, app) == (row["version"], row["app"])
        }  # fmt: skip
    return summary
