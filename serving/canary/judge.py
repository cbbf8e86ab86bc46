"""The canary verdict: a pure function of the candidate's figures, thresholds and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from serving.canary.stats import VersionStats

__all__ = ["CanaryThresholds", "Decision", "Verdict", "judge_canary"]


class Decision(StrEnum):
    WAIT = "wait"
    COMPLETE = "complete"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True)
class CanaryThresholds:
    """``measure`` names what the latency figures are: a request's whole latency, or for a
    language model its time to first token (the rest of its latency is the length asked for).
    Either way ``max_p99_latency_ms`` bounds their p99."""

    max_error_rate: float
    max_p99_latency_ms: float
    min_requests: int
    measure: str = "latency"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    figures: dict[str, Any]


def judge_canary(
    candidate: VersionStats, limits: CanaryThresholds, now: datetime, bake_until: datetime
) -> Verdict:
    """Roll back as soon as a judged breach shows; complete at the deadline if none did.

    A canary is judged only on ``min_requests`` or more; at the deadline, one that saw fewer
    is rolled back (no evidence is not a pass).
    """
    p99 = candidate.percentile_ms(99)
    figures: dict[str, Any] = {
        "requests": candidate.requests,
        "errors": candidate.errors,
        "error_rate": round(candidate.error_rate, 4),
        "p99_ms": p99,
        "measure": limits.measure,
        "max_error_rate": limits.max_error_rate,
        "max_p99_latency_ms": limits.max_p99_latency_ms,
        "min_requests": limits.min_requests,
    }
    if candidate.requests >= limits.min_requests:
        if candidate.error_rate > limits.max_error_rate:
            reason = (
                f"canary error rate {candidate.error_rate:.1%} ({candidate.errors}/"
                f"{candidate.requests}) over max_error_rate {limits.max_error_rate:.1%}"
            )
            return Verdict(Decision.ROLL_BACK, reason, figures)
        if p99 > limits.max_p99_latency_ms:
            reason = (
                f"canary p99 {limits.measure} {p99:g} ms over max_p99_latency_ms "
                f"{limits.max_p99_latency_ms:g} ms ({candidate.requests} requests)"
            )
            return Verdict(Decision.ROLL_BACK, reason, figures)
    if now < bake_until:
        return Verdict(Decision.WAIT, "baking", figures)
    if candidate.requests < limits.min_requests:
        reason = (
            f"canary saw {candidate.requests} requests in its bake window, fewer than "
            f"min_requests {limits.min_requests}: not judged, not promoted"
        )
        return Verdict(Decision.ROLL_BACK, reason, figures)
    reason = (
        f"canary passed: error rate {candidate.error_rate:.1%}, p99 {limits.measure} <= {p99:g} ms "
        f"over {candidate.requests} requests"
    )
    return Verdict(Decision.COMPLETE, reason, figures)
