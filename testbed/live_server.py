"""A real `bentoml serve` on 127.0.0.1 following the tiny deployment, and one-request clients.

The server runs in its own process group, killed whole on exit; a failure prints the tail of
its log into the caller's output.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.ports import free_port
from conveyor.settings import Settings
from serving.control.server import serve_command, serve_environment
from testbed.versions import DEPLOYMENT


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host``:``port`` (half a second's wait)."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def status(self) -> dict[str, Any]:
        """The worker's ``/v1/status`` (one worker answers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/v1/status")
        data: dict[str, Any] = json.loads(conn.getresponse().read())
        return data

    def kill9(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def _wait_for(
    path: str, what: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"127.0.0.1:{port} not {what} after {timeout:g} s")


def wait_ready(
    port: int, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until /readyz answers 200 (a version loaded and smoke-checked)."""
    _wait_for("/readyz", "ready", port, timeout, process)


def wait_listening(
    port: int, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until /livez answers 200 (the server is up; it may not be ready)."""
    _wait_for("/livez", "up", port, timeout, process)


def _print_log_tail(log: Path, lines: int = 60) -> None:
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    sys.stderr.write(f"--- last {len(tail)} lines of {log} ---\n" + "\n".join(tail) + "\n")


@contextmanager
def running_server(
    settings: Settings,
    workers: int = 1,
    log_dir: Path | None = None,
    torch_threads: int | None = 1,
    ready: bool = True,
    deployment: str = DEPLOYMENT,
    ready_timeout: float = 90.0,
) -> Iterator[Server]:
    """`bentoml serve` following ``deployment`` (several: comma-separated); its whole process
    group is killed on exit.

    ``torch_threads=None`` leaves the server's own choice (the cores shared by the workers);
    ``ready=False`` yields once it listens, ready or not."""
    port = free_port()
    log = (log_dir or settings.home) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    env = serve_environment(settings, deployment, workers, torch_threads=torch_threads, url=url)
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, process, log)
    try:
        if ready:
            wait_ready(port, timeout=ready_timeout, process=process)
        else:
            wait_listening(port, timeout=ready_timeout, process=process)
        yield server
    except BaseException:
        _print_log_tail(log)  # the server's side of a failure, in the test's captured output
        raise
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                server.kill9()


def classify(
    port: int, text: str = "set a timer", key: str | None = None
) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if key:
        headers["x-canary-key"] = key
    conn.request("POST", "/classify", body=json.dumps({"text": text}), headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("x-model-version")
