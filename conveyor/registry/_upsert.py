"""INSERT .. ON CONFLICT DO UPDATE on SQLite and Postgres: one atomic statement, no read first."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from conveyor.errors import ConveyorError
from conveyor.registry.tables import Base

__all__ = ["upsert"]


def upsert(
    session: Session,
    table: type[Base],
    values: dict[str, Any],
    *,
    key: Collection[str],
    add: Collection[str] = (),
) -> None:
    """Insert ``values``, or where a row with the same ``key`` exists update it in place:
    columns named in ``add`` grow by the new values (``n = n + excluded.n``, so concurrent
    writers never lose each other's counts), the others are replaced."""
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(**values)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values)
    else:
        raise ConveyorError(f"the registry supports SQLite and PostgreSQL, not {dialect}")
    columns = table.__table__.c
    changes = {
        name: columns[name] + statement.excluded[name] if name in add else statement.excluded[name]
        for name in values
        if name not in key
    }
    session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes))
