"""Start or reuse a local Prefect server (API and UI) on 127.0.0.1, detached from the caller.

It keeps running after the command that started it, so the UI stays up to look at;
``stop_prefect_server`` ends it (process group, so the orphan engine processes too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
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
    log_path = settings.home / "logs" / "prefect-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(settings.prefect_home)}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    _pid_file(settings).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(settings).write_text(str(child.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if prefect_health(url):
            return PrefectServer(url, child.pid, started=True)
        if child.poll() is not None:
            raise ConveyorError(
                f"the Prefect server exited with {child.returncode}; see {log_path}"
            )
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGTERM)
    raise ConveyorError(
        f"the Prefect server did not answer within {START_TIMEOUT_S:.0f} s; see {log_path}"
    )


def stop_prefect_server(settings: Settings) -> bool:
    """Stop the server this home started; False when none was recorded or it was gone."""
    path = _pid_file(settings)
    if not path.is_file():
        return False
    pid = int(path.read_text().strip())
    path.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(40):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.25)
    os.killpg(pid, signal.SIGKILL)  # the engine child can ignore SIGTERM (STACK.md)
    return True
