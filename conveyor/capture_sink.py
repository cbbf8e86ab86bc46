"""Where a capture is written: Parquet under the home (the default), or one Postgres table.

A scaled-out deployment (replicas on several hosts, no shared disk) names a Postgres
database in ``serving.capture.sink``; every worker appends its rows to the table
:data:`CAPTURE_TABLE` there and ``conveyor traffic`` reads them back. The table's columns
are :data:`conveyor.capture_format.CAPTURE_SCHEMA`'s, in its order. Workers write the sink
(``serving.worker.capture_postgres``) and the control plane reads it
(``serving.control.capture_postgres``): the table's shape lives here, once, for both.

A sink URL never holds a password: the recipe is stored in the registry and shown in
lineage; libpq reads the password from ``PGPASSWORD`` or ``~/.pgpass`` on each host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow as pa

from conveyor.capture_format import CAPTURE_SCHEMA

__all__ = [
    "CAPTURE_TABLE",
    "PARQUET",
    "create_table_sql",
    "is_postgres",
    "libpq_url",
    "sink_problem",
]

PARQUET = "parquet"
CAPTURE_TABLE = "conveyor_capture"
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_PG_TYPES = {
    pa.string(): "text",
    pa.timestamp("us", tz="UTC"): "timestamptz",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.float64(): "double precision",
    pa.bool_(): "boolean",
}


def is_postgres(sink: str) -> bool:
    return sink != PARQUET


def sink_problem(sink: str) -> str | None:
    """What is wrong with a ``serving.capture.sink`` value, or None when it is usable."""
    if sink == PARQUET:
        return None
    try:
        parts = urlsplit(sink)
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError as exc:
        return f"{sink!r} is not a URL: {exc}"
    if parts.scheme not in _SCHEMES:
        return f"expected {PARQUET!r} or a postgresql://USER@HOST[:PORT]/DATABASE URL, not {sink!r}"
    if parts.password is not None or "password=" in parts.query:
        return (
            "a password does not belong in the recipe (it is stored in the registry): "
            "drop it from the URL and set PGPASSWORD or ~/.pgpass on each host"
        )
    if not parts.hostname or not parts.path.strip("/"):
        return f"{sink!r} names no host or no database (postgresql://USER@HOST[:PORT]/DATABASE)"
    return None


def libpq_url(sink: str) -> str:
    """The sink as libpq reads it (``postgresql://``, no SQLAlchemy driver name)."""
    scheme, rest = sink.split("://", 1)
    return "postgresql://" + rest if scheme in _SCHEMES else sink


def create_table_sql() -> list[str]:
    """The statements that create the capture table and its index, if missing."""
    columns = ", ".join(
        f"{field.name} {_PG_TYPES[field.type]}{'' if field.nullable else ' NOT NULL'}"
        + (" PRIMARY KEY" if field.name == "id" else "")
        for field in CAPTURE_SCHEMA
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {CAPTURE_TABLE} ({columns})",
        f"CREATE INDEX IF NOT EXISTS {CAPTURE_TABLE}_deployment_ts "
        f"ON {CAPTURE_TABLE} (deployment, ts)",
    ]
