"""`conveyor serve` killed with kill -9 takes its `bentoml serve` with it: no orphan on the port.

The server runs in a session of its own (so `conveyor serve` can stop it as a group), so a
kill -9 of `conveyor serve`'s process group never reached it: it kept the port, and a
restarted replica could not bind it. Found by tests/e2e/test_team_topology.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.ports import free_port
from conveyor.registry import Registry
from testbed.live_server import port_open, wait_listening
from testbed.paths import REPO_ROOT
from testbed.versions import DEPLOYMENT

pytestmark = pytest.mark.integration


def test_a_killed_conveyor_serve_leaves_no_server_behind(
    registry: Registry, tmp_path: Path
) -> None:
    import psutil

    port = free_port()
    command = [sys.executable, "-c", "from cli.app import main; main()", "serve", DEPLOYMENT]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server: psutil.Process | None = None
    try:
        wait_listening(port, timeout=120, process=process)  # up; nothing to serve yet
        (server,) = psutil.Process(process.pid).children()
        assert os.getpgid(server.pid) != os.getpgid(process.pid)
        os.killpg(process.pid, signal.SIGKILL)  # `conveyor serve` and its group: not the server
        process.wait(timeout=10)
        server.wait(timeout=30)  # it followed its parent (psutil raises if it did not)
        assert not port_open("127.0.0.1", port)
    finally:
        if process.poll() is None:
            process.kill()
        if server is not None:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(server.pid, signal.SIGKILL)
