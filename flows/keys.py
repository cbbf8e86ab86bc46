"""Cache keys for the retrain flow: same data, same recipe, same code -> same results.

A re-run after a crash resumes after the last finished stage because each stage's
result is persisted under a key made of these three fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["code_fingerprint", "run_key"]

_PACKAGES = ("conveyor", "data_checks", "training", "gates", "serving", "flows")
_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over the stage packages' Python sources (names and bytes)."""
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(recipe: dict[str, Any], data_fingerprint: str, registry_url: str) -> str:
    """Same recipe, data, code and registry: the same run (a different registry never shares)."""
    payload = json.dumps(recipe, sort_keys=True, default=str)
    parts = (payload, data_fingerprint, code_fingerprint(), registry_url)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
