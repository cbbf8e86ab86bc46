"""A server left running in the background: start it detached, wait for it, stop it.

Used for the local Prefect server and the demo's model server. The process runs in its
own process group (so stopping it reaches its children), logs to a file, and its pid is
kept in a file so a later command can stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from conveyor.errors import ConveyorError

__all__ = ["start_detached", "stop_detached"]


def start_detached(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    pid_file: Path,
    is_up: Callable[[], bool],
    timeout: float,
    what: str,
) -> int:
    """Start ``command`` detached, record its pid, and wait until ``is_up()``; its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(child.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_up():
            return child.pid
        if child.poll() is not None:
            raise ConveyorError(f"the {what} exited with {child.returncode}; see {log_path}")
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGTERM)
    raise ConveyorError(f"the {what} was not up within {timeout:.0f} s; see {log_path}")


def stop_detached(pid_file: Path, grace_seconds: float = 15.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL after the grace period; False if none ran."""
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().strip())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.25)
    os.killpg(pid, signal.SIGKILL)  # e.g. Prefect's engine child can ignore SIGTERM (STACK.md)
    return True
