"""Start or reuse a local Prefect server (API and UI) on 127.0.0.1, detached from the caller.

It keeps running after the command that started it, so the UI stays up to look at;
``stop_prefect_server`` ends it (process group, so the orphan engine processes too).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conveyor.background import start_detached, stop_detached
from conveyor.settings import Settings

__all__ = ["PrefectServer", "ensure_prefect_server", "prefect_health", "stop_prefect_server"]

DEFAULT_PORT = 4200
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class PrefectServer:
    url: str
    pid: int | None
    started: bool

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


def _pid_file(settings: Settings) -> Path:
    return settings.home / "run" / "prefect-server.pid"


def prefect_health(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_prefect_server(settings: Settings, port: int = DEFAULT_PORT) -> PrefectServer:
    """Reuse a healthy server on the port, else start one and wait until it answers."""
    url = f"http://127.0.0.1:{port}"
    if prefect_health(url):
        return PrefectServer(url, None, started=False)
    env = {**os.environ, "PREFECT_HOME": str(settings.prefect_home)}
    env.pop("PREFECT_API_URL", None)
    # The UI asks this URL for the API; left unset it says port 4200 whatever --port is.
    env["PREFECT_UI_API_URL"] = f"{url}/api"
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    pid = start_detached(
        command,
        env=env,
        log_path=settings.home / "logs" / "prefect-server.log",
        pid_file=_pid_file(settings),
        is_up=lambda: prefect_health(url),
        timeout=START_TIMEOUT_S,
        what="Prefect server",
    )
    return PrefectServer(url, pid, started=True)


def stop_prefect_server(settings: Settings) -> bool:
    """Stop the server this home started; False when none was recorded or it was gone."""
    return stop_detached(_pid_file(settings), grace_seconds=10.0)
