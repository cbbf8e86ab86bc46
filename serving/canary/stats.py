"""Per-version request figures: counts, errors and a fixed-bucket latency histogram.

Fixed buckets let figures from many workers be summed and a p99 read from the sum,
which is what the canary judge needs (each worker reports through its heartbeat).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LATENCY_BUCKETS_MS", "VersionStats", "merge_stats"]

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
)  # fmt: skip


@dataclass
class VersionStats:
    """Requests, errors and latency of one version; ``buckets[i]`` counts <= bound i."""

    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def observe(self, latency_ms: float, failed: bool) -> None:
        self.requests += 1
        self.errors += int(failed)
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile_ms(self, q: float) -> float:
        """Upper bound of the bucket holding the q-th percentile (inf past the last bound)."""
        total = sum(self.buckets)
        if total == 0:
            return 0.0
        rank = q / 100 * total
        seen = 0
        for index, count in enumerate(self.buckets):
            seen += count
            if seen >= rank and count:
                return (
                    LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else float("inf")
                )
        return float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "buckets": list(self.buckets)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionStats:
        buckets = [int(x) for x in data.get("buckets", [])]
        if len(buckets) != len(LATENCY_BUCKETS_MS) + 1:
            buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        return cls(int(data.get("requests", 0)), int(data.get("errors", 0)), buckets)


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> VersionStats:
    """Sum figures reported by several workers for one version."""
    total = VersionStats()
    for part in parts:
        one = VersionStats.from_dict(part)
        total.requests += one.requests
        total.errors += one.errors
        total.buckets = [a + b for a, b in zip(total.buckets, one.buckets, strict=True)]
    return total
