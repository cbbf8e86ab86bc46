"""Per-minute latency of a trace replay (live or simulated): requests, answers, p50/p99 time
to first token and end to end. A request without an answer counts as infinitely late."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MinuteRow", "minute_rows", "percentile", "render_minutes"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class MinuteRow:
    minute: int
    requests: int
    answered: int
    ttft_p50: float
    ttft_p99: float
    e2e_p50: float
    e2e_p99: float
    over_slo: int


def minute_rows(
    arrivals: Sequence[float],
    ttft: Sequence[float],
    e2e: Sequence[float],
    slo_ttft_s: float,
) -> list[MinuteRow]:
    """One row per minute of arrival (by when each request was sent)."""
    by_minute: dict[int, list[int]] = {}
    for index, at in enumerate(arrivals):
        by_minute.setdefault(int(at // 60), []).append(index)
    rows = []
    for minute, indices in sorted(by_minute.items()):
        firsts = [ttft[i] for i in indices]
        wholes = [e2e[i] for i in indices]
        rows.append(
            MinuteRow(
                minute,
                len(indices),
                sum(math.isfinite(w) for w in wholes),
                percentile(firsts, 50),
                percentile(firsts, 99),
                percentile(wholes, 50),
                percentile(wholes, 99),
                sum(not t <= slo_ttft_s for t in firsts),
            )
        )
    return rows


def render_minutes(rows: Sequence[MinuteRow]) -> str:
    """A Markdown table of the rows."""
    lines = [
        "| minute | requests | answered | TTFT p50 s | TTFT p99 s | e2e p50 s | e2e p99 s "
        "| over SLO |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.minute} | {r.requests} | {r.answered} | {r.ttft_p50:.2f} | {r.ttft_p99:.2f} "
            f"| {r.e2e_p50:.2f} | {r.e2e_p99:.2f} | {r.over_slo} |"
        )
    return "\n".join(lines)
