"""The model a packaged Bento serves, carried in the Bento's own source.

``conveyor package`` writes ``serving/bento_pin.json`` into the Bento's build context only (a
temporary copy, never the checkout), so the Bento's ``src/`` holds it and the service reads it
at import: ``bentoml serve <bento>`` and a container serve the pinned model with nothing set.
``CONVEYOR_BENTO_MODEL`` still overrides it. From the checkout there is no file and no pin:
``conveyor serve`` follows its deployment.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PIN_PATH", "pinned_model", "write_pin"]

PIN_PATH = "serving/bento_pin.json"  # relative to a build context, and to the Bento's src/
_PIN_FILE = Path(__file__).with_name(Path(PIN_PATH).name)


def pinned_model(override: str | None) -> str | None:
    """The model tag to serve pinned: the override if set, else this Bento's pin, else none."""
    if override:
        return override
    try:
        return str(json.loads(_PIN_FILE.read_text())["model"])
    except FileNotFoundError:
        return None


def write_pin(build_ctx: Path, model_tag: str) -> str:
    """Pin ``model_tag`` in a build context; returns the include pattern that carries it."""
    (build_ctx / PIN_PATH).write_text(json.dumps({"model": model_tag}) + "\n")
    return PIN_PATH
