"""Fixtures of the serving tests (tiny versions, the live server and its clients are in
``testbed.versions``, ``testbed.live_server`` and ``testbed.traffic``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from conveyor.settings import Settings
from testbed.live_server import port_open


@pytest.fixture
def serving_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def capture_db() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 for a capture sink; its libpq URL.
    Dropped afterwards, whatever connections are left on it."""
    import psycopg

    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"conveyor_capture_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"cannot create a database on 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
