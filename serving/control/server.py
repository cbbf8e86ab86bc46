"""Run ``bentoml serve`` on 127.0.0.1 for a deployment: the command and its environment."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from conveyor.settings import Settings

__all__ = ["REPO_ROOT", "die_with_parent", "serve_command", "serve_environment"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # serving/control/server.py: the checkout
SERVICE = "serving.api.service:Conveyor"


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """``python -m bentoml serve`` with this interpreter (the venv's BentoML)."""
    return [
        sys.executable, "-m", "bentoml", "serve", SERVICE,
        "--host", host, "--port", str(port), "--working-dir", str(REPO_ROOT),
    ]  # fmt: skip


def serve_environment(
    settings: Settings,
    deployment: str,
    workers: int,
    base: Mapping[str, str] | None = None,
    torch_threads: int | None = None,
    url: str | None = None,
) -> dict[str, str]:
    """The child's environment: which deployment to follow (several: comma-separated), how
    many workers, the adapter bounds, the same home; ``url``: where clients reach it, which
    its workers publish in their heartbeats."""
    env = dict(os.environ if base is None else base)
    env.pop("CONVEYOR_SERVE_URL", None)
    if url:
        env["CONVEYOR_SERVE_URL"] = url
    env["CONVEYOR_HOME"] = str(settings.home)
    if settings.db_url:
        env["CONVEYOR_DB_URL"] = settings.db_url
    env["CONVEYOR_SERVE_DEPLOYMENT"] = deployment
    env["CONVEYOR_SERVE_HOST"] = settings.serve_host
    if settings.require_api_key is not None:
        env["CONVEYOR_REQUIRE_API_KEY"] = str(settings.require_api_key).lower()
    if settings.redis_url:
        env["CONVEYOR_REDIS_URL"] = settings.redis_url
    env["CONVEYOR_SERVE_WORKERS"] = str(workers)
    adapter_bounds = {
        "CONVEYOR_MAX_LOADED_ADAPTERS": settings.max_loaded_adapters,
        "CONVEYOR_ADAPTER_MEMORY_MB": settings.adapter_memory_mb,
        "CONVEYOR_ADAPTER_WAIT_SECONDS": settings.adapter_wait_seconds,
    }
    for name, value in adapter_bounds.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    env["BENTOML_HOME"] = str(settings.bentoml_home)
    env.pop("CONVEYOR_BENTO_MODEL", None)
    cores = os.cpu_count() or 1
    env["CONVEYOR_TORCH_THREADS"] = str(torch_threads or max(1, cores // max(1, workers)))
    return env


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when the process that started it dies (Linux).

    ``conveyor serve`` starts `bentoml serve` in a session of its own (so it can stop it as a
    group); without this, a ``kill -9`` of ``conveyor serve`` left that server running as an
    orphan, holding the port its restarted replica then could not bind.
    """
    parent = os.getpid()

    def arm() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
