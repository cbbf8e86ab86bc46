"""A model server left running in the background (for the demo): start or reuse, stop.

The server is ``conveyor serve``'s `bentoml serve` on 127.0.0.1 in its own process group,
logging to ``$CONVEYOR_HOME/logs``; its pid is kept under ``$CONVEYOR_HOME/run``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conveyor.background import start_detached, stop_detached
from conveyor.settings import Settings
from serving.control.server import serve_command, serve_environment

__all__ = [
    "ModelServer",
    "ensure_model_server",
    "ready",
    "stop_model_server",
    "stop_model_servers",
]

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
    pid = start_detached(
        serve_command(port),
        env=serve_environment(settings, deployment, workers, url=url),
        log_path=settings.home / "logs" / f"serve-{deployment}.log",
        pid_file=_pid_file(settings, deployment),
        is_up=lambda: ready(url),
        timeout=READY_TIMEOUT_S,
        what="model server",
    )
    return ModelServer(url, pid, started=True)


def stop_model_server(settings: Settings, deployment: str) -> bool:
    """Stop the server this home started for ``deployment``; its workers follow their parent."""
    return stop_detached(_pid_file(settings, deployment))


def stop_model_servers(settings: Settings) -> list[str]:
    """Stop every model server this home started, whatever its deployment; the deployments."""
    stopped = []
    for pid_file in sorted((settings.home / "run").glob("serve-*.pid")):
        deployment = pid_file.stem.removeprefix("serve-")
        if stop_detached(pid_file):
            stopped.append(deployment)
    return stopped
