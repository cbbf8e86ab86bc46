"""A model server left running in the background (for the demo): start or reuse, stop.

The server is ``conveyor serve``'s `bentoml serve` on 127.0.0.1 in its own process group,
logging to ``$CONVEYOR_HOME/logs``; its pid is kept under ``$CONVEYOR_HOME/run``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.settings import Settings
from serving.server import serve_command, serve_environment

__all__ = ["ModelServer", "ensure_model_server", "ready", "stop_model_server"]

READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class ModelServer:
    url: str
    pid: int | None
    started: bool


def _pid_file(settings: Settings, deployment: str) -> Path:
    return settings.home / "run" / f"serve-{deployment}.pid"


def ready(url: str, timeout: float = 2.0) -> bool:
    """True once a worker has a model loaded (BentoML's /readyz)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_model_server(
    settings: Settings, deployment: str, port: int, workers: int = 1
) -> ModelServer:
    """Reuse a ready server on the port, else start one and wait until it serves a model."""
    url = f"http://127.0.0.1:{port}"
    if ready(url):
        return ModelServer(url, None, started=False)
    log_path = settings.home / "logs" / f"serve-{deployment}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = serve_environment(settings, deployment, workers)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            serve_command(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    pid_file = _pid_file(settings, deployment)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(child.pid))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready(url):
            return ModelServer(url, child.pid, started=True)
        if child.poll() is not None:
            raise ConveyorError(f"the model server exited with {child.returncode}; see {log_path}")
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGTERM)
    raise ConveyorError(
        f"the model server was not ready within {READY_TIMEOUT_S:.0f} s; see {log_path}"
    )


def stop_model_server(settings: Settings, deployment: str) -> bool:
    """Stop the server this home started for ``deployment``; its workers follow their parent."""
    path = _pid_file(settings, deployment)
    if not path.is_file():
        return False
    pid = int(path.read_text().strip())
    path.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(60):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.25)
    os.killpg(pid, signal.SIGKILL)
    return True
