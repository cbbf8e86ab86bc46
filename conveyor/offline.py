"""Offline by construction: the environment every conveyor entry point runs with.

The variables are the ones ../shared/STACK.md measured to keep every library off
the network (hub downloads, telemetry). A value the user already set wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from conveyor.settings import Settings

__all__ = ["OFFLINE_DEFAULTS", "apply_offline_environment"]

OFFLINE_DEFAULTS: dict[str, str] = {
    # Hugging Face: fail at once instead of ~53 s of DNS retries, and no telemetry.
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Prefect: no analytics look-up from the server, no tracking.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # BentoML: `serve` otherwise looks up its telemetry host.
    "BENTOML_DO_NOT_TRACK": "True",
    # Great Expectations: no usage statistics.
    "GX_ANALYTICS_ENABLED": "false",
    # Not about the network: the stages' own loggers reach Prefect's run logs and UI.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "training,data_checks,gates,serving",
    # ...and outside a flow (a stage called directly) they only log, with no warning per line.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
_TOOL_HOMES = ("PREFECT_HOME", "BENTOML_HOME", "TORCH_EXTENSIONS_DIR")


def apply_offline_environment(
    settings: Settings, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Set the offline variables and the tool homes unless already set; create the homes.

    Returns the variables this call set (what it changed), for logging and tests.
    """
    env = os.environ if environ is None else environ
    wanted = dict(OFFLINE_DEFAULTS)
    wanted["PREFECT_HOME"] = str(settings.prefect_home)
    wanted["BENTOML_HOME"] = str(settings.bentoml_home)
    wanted["TORCH_EXTENSIONS_DIR"] = str(settings.torch_extensions_dir)
    changed: dict[str, str] = {}
    for name, value in wanted.items():
        if name not in env:
            env[name] = value
            changed[name] = value
    for name in _TOOL_HOMES:  # tools fail obscurely on a missing home (Prefect's SQLite)
        Path(env[name]).expanduser().mkdir(parents=True, exist_ok=True)
    return changed
