"""A deployment's captured rows read out of a Postgres sink, as an Arrow table for DuckDB.

DuckDB's own ``postgres`` extension is not used: it is fetched from the internet the first
time it loads, and conveyor reaches no network it was not pointed at. Instead the rows are
streamed with psycopg's ``COPY (SELECT …) TO STDOUT`` as CSV and parsed by Arrow (about a
million rows a second), and DuckDB answers the question over that table in memory.

Only fixed SQL reaches Postgres, on a read-only session: the deployment, and the version,
app and start the caller narrows to, as quoted literals. ``--where`` and ``--sql`` run in
DuckDB only, over the rows read, so they can neither write nor see another table.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pyarrow as pa

from conveyor.capture_format import CAPTURE_SCHEMA
from conveyor.capture_sink import CAPTURE_TABLE, libpq_url
from conveyor.errors import ConveyorError

__all__ = ["read_postgres_capture"]

CONNECT_SECONDS = 10
_TS = "ts"


def _select(
    deployment: str, version: str | None, app: str | None, start: datetime | None
) -> tuple[str, list[object]]:
    columns = ", ".join(
        "(extract(epoch FROM ts) * 1000000)::bigint" if f.name == _TS else f.name
        for f in CAPTURE_SCHEMA
    )
    clauses = ["deployment = %s"]
    values: list[object] = [deployment]
    for column, value in (("version", version), ("app", app)):
        if value is not None:
            clauses.append(f"{column} = %s")
            values.append(value)
    if start is not None:
        clauses.append("ts >= %s")
        values.append(start)
    return f"SELECT {columns} FROM {CAPTURE_TABLE} WHERE {' AND '.join(clauses)}", values


def read_postgres_capture(
    url: str,
    deployment: str,
    version: str | None = None,
    app: str | None = None,
    start: datetime | None = None,
) -> pa.Table:
    """The deployment's rows in the sink at ``url`` (narrowed as asked), in
    :data:`CAPTURE_SCHEMA`; an empty table when the sink holds no capture table yet."""
    import psycopg
    from psycopg import sql

    select, values = _select(deployment, version, app, start)
    buffer = io.BytesIO()
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=CONNECT_SECONDS) as conn:
            conn.read_only = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (CAPTURE_TABLE,))
                found = cursor.fetchone()
                if found is None or not found[0]:
                    return CAPTURE_SCHEMA.empty_table()
                copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(
                    _bound(select, values)
                )
                with cursor.copy(copy_sql) as copy:
                    for block in copy:
                        buffer.write(block)
    except psycopg.Error as exc:  # one line: the CLI prints it as its one error line
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConveyorError(f"cannot read the capture in Postgres: {said}") from exc
    return _parsed(buffer.getvalue())


def _bound(select: str, values: list[object]) -> Any:
    """``select`` with its ``%s`` replaced by quoted literals (COPY takes no parameters)."""
    from psycopg import sql

    parts = select.split("%s")
    pieces: list[sql.Composable] = [sql.SQL(parts[0])]
    for value, rest in zip(values, parts[1:], strict=True):
        pieces += [sql.Literal(value), sql.SQL(rest)]
    return sql.Composed(pieces)


def _parsed(data: bytes) -> pa.Table:
    import pyarrow.csv as pcsv

    if not data:
        return CAPTURE_SCHEMA.empty_table()
    types = {f.name: (pa.int64() if f.name == _TS else f.type) for f in CAPTURE_SCHEMA}
    table = pcsv.read_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(column_names=list(types), block_size=1 << 24),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # Postgres writes NULL bare and '' quoted
            true_values=["t"],
            false_values=["f"],
        ),
    )
    ts = table.column(_TS).cast(pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index(_TS), _TS, ts)
    return table.cast(CAPTURE_SCHEMA)
