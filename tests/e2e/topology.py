"""The pieces of the team topology as real processes on loopback, for tests/e2e/test_team_topology.

Databases of the test's own on the shared PostgreSQL (created, then dropped), a Redis db index
of its own (emptied after), and processes each in a session of its own with a log file, killed
as a whole tree (the process groups of every descendant: `conveyor serve` starts `bentoml
serve` in a session of its own, a Prefect worker starts each flow run as a child).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.live_server import port_open
from testbed.paths import REPO_ROOT

__all__ = [
    "Proc",
    "emit_landed",
    "own_database",
    "own_redis_db",
    "start",
    "version_answering",
    "wait_for",
]

PG_HOST = "postgres@127.0.0.1:5432"


@contextlib.contextmanager
def own_database(prefix: str) -> Iterator[str]:
    """A fresh database on 127.0.0.1:5432, dropped afterwards; its name."""
    from sqlalchemy import create_engine, text

    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"postgresql+psycopg://{PG_HOST}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"cannot create a database on 127.0.0.1:5432: {exc}")
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def own_redis_db() -> Iterator[str]:
    """A Redis URL on an empty db index of 127.0.0.1:6379 (others use 0), emptied afterwards."""
    import redis

    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not listening on 127.0.0.1:6379")
    for index in range(15, 0, -1):
        client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{index}")
        marker = f"conveyor-topology-test:{uuid.uuid4().hex}"
        if client.dbsize() == 0 and client.set(marker, "1", nx=True, ex=3600):
            try:
                yield f"redis://127.0.0.1:6379/{index}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.skip("no empty Redis db index on 127.0.0.1:6379")


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tree(self) -> list[int]:
        """This process and every descendant (pids)."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            return [root.pid, *(child.pid for child in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """kill -9 of the process group of this process and of each descendant."""
        groups = set()
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(pid))
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text)


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, process, log)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """Until ``check()`` is truthy (its value), or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, http.client.HTTPException, urllib.error.URLError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(every)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:
        return bool(response.status == 200)


def version_answering(port: int, text: str = "set a timer for ten minutes") -> str | None:
    """The X-Model-Version of a 200 answer to /classify on 127.0.0.1:``port`` (None otherwise)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST", "/classify", json.dumps({"text": text}), {"content-type": "application/json"}
        )
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            return None
        return response.getheader("x-model-version")
    finally:
        conn.close()


EMIT = (
    "import sys\n"
    "from pathlib import Path\n"
    "from flows.watch import emit_data_landed\n"
    "emit_data_landed(sys.argv[1], Path(sys.argv[2]))\n"
)


def emit_landed(deployment: str, path: Path, env: dict[str, str]) -> None:
    """What `conveyor watch` does when a file lands (the event is sent before the exit)."""
    subprocess.run(
        [sys.executable, "-c", EMIT, deployment, str(path)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=60,
    )
