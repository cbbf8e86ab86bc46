"""Which loaded version answers a request: the canary split, decided per request or per client."""

from __future__ import annotations

import hashlib
import random

__all__ = ["PINNED_ROLE", "canary_bucket", "routes_to_canary"]

# The role of a request whose caller named the version (a key allowed to pin): answered and
# measured, never canary evidence, whatever role the version has in the split.
PINNED_ROLE = "pinned"


def canary_bucket(key: str) -> float:
    """A stable number in [0, 100) for a client key: the same client always lands the same side."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


def routes_to_canary(percent: float, key: str | None, rng: random.Random | None = None) -> bool:
    """True when this request goes to the candidate: by client key when given, else at random."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    draw = canary_bucket(key) if key else (rng or random).random() * 100
    return draw < percent
