"""Alembic environment: migrate the connection conveyor hands in, or ``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from conveyor.registry.engine import create_registry_engine
from conveyor.registry.tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the registry URL: alembic -x url=sqlite:///path upgrade head")
    with create_registry_engine(url).connect() as conn:
        _run(conn)


run_migrations_online()
