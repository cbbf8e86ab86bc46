"""The text profile's shared format: its schema number and its fixed length bins.

Training writes a data profile with these bins (``data_checks.stats``) and every serving
worker counts live traffic into the same bins (``serving.profile``), so the two compare bin
by bin. It lives in the core because both stages read it, and a packaged Bento, which ships
only ``conveyor`` and ``serving``, must too.
"""

from __future__ import annotations

import math

__all__ = ["LENGTH_EDGES", "PROFILE_SCHEMA"]

PROFILE_SCHEMA = 1

# Fixed text-length bins (characters), so profiles of any two data sets compare bin by bin.
LENGTH_EDGES: tuple[float, ...] = (
    0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096, math.inf,
)  # fmt: skip
