"""Run ``bentoml serve`` on 127.0.0.1 for a deployment: the command and its environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from conveyor.settings import Settings

__all__ = ["REPO_ROOT", "serve_command", "serve_environment"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:Conveyor"


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
) -> dict[str, str]:
    """The child's environment: which deployment to follow, how many workers, the same home."""
    env = dict(os.environ if base is None else base)
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
    env["BENTOML_HOME"] = str(settings.bentoml_home)
    env.pop("CONVEYOR_BENTO_MODEL", None)
    cores = os.cpu_count() or 1
    env["CONVEYOR_TORCH_THREADS"] = str(torch_threads or max(1, cores // max(1, workers)))
    return env
