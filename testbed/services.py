"""A Redis and a PostgreSQL of the test's own, on free ports, that a test may kill and restart
(the shared ones on 6379 and 5432 are left alone)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conveyor.ports import free_port

__all__ = ["OwnPostgres", "OwnRedis", "own_postgres", "own_redis"]


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@dataclass
class OwnRedis:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_port(self.port)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill9()


@dataclass
class OwnPostgres:
    data: Path
    port: int
    run_as: dict[str, int]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", *args],
            check=True, capture_output=True, timeout=60,
            user=self.run_as.get("user"), group=self.run_as.get("group"),
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "start")
        _wait_port(self.port)

    def stop(self) -> None:
        """``-m immediate``: the server goes away as in a crash, connections cut."""
        self._ctl("-m", "immediate", "stop")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh cluster (trust auth for ``postgres`` on loopback) in a temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    run_as: dict[str, int] = {}
    if os.geteuid() == 0:  # initdb refuses root: the cluster runs as nobody
        nobody = pwd.getpwnam("nobody")
        folder.chmod(0o777)
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
    data = folder / "pgdata"
    subprocess.run(
        ["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True, capture_output=True, timeout=120,
        user=run_as.get("user"), group=run_as.get("group"),
    )  # fmt: skip
    server = OwnPostgres(data, free_port(), run_as)
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(folder, ignore_errors=True)
