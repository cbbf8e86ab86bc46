"""Judge a baking canary from every live worker's figures, and close the rollout on a verdict.

Any process may call :func:`judge_rollout` (each serving worker does, and so does a waiting
``conveyor promote``): closing is a compare-and-set, so exactly one caller wins.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from conveyor.errors import RegistryConflictError
from conveyor.registry import Registry, RolloutRecord, RolloutState, WorkerRecord
from conveyor.serving_spec import serving_spec_of
from serving.canary.evidence import capped_evidence, merge_by_app
from serving.canary.judge import CanaryThresholds, Decision, Verdict, judge_canary
from serving.canary.stats import merge_stats

__all__ = ["LIVE_SECONDS", "canary_figures", "judge_rollout", "live_workers", "thresholds_for"]

LIVE_SECONDS = 3.0
log = logging.getLogger(__name__)


def live_workers(
    registry: Registry, deployment: str, now: datetime | None = None
) -> list[WorkerRecord]:
    """Workers whose heartbeat is fresh (a killed worker stops counting after LIVE_SECONDS)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=LIVE_SECONDS)
    return [w for w in registry.workers(deployment) if w.updated_at >= cutoff]


def thresholds_for(registry: Registry, version: str) -> CanaryThresholds:
    record = registry.resolve(version)
    rollback = serving_spec_of(record).rollback
    measure = "time to first token" if record.task == "causal-lm" else "latency"
    return CanaryThresholds(
        rollback.max_error_rate, rollback.max_p99_latency_ms, rollback.min_requests, measure
    )


def canary_figures(
    workers: list[WorkerRecord], rollout: RolloutRecord, version: str
) -> dict[str, object]:
    """The version's figures summed over the workers that report this rollout."""
    parts = [w.stats[version] for w in workers if w.rollout_id == rollout.id and version in w.stats]
    return merge_stats(parts).as_dict()


def judge_rollout(registry: Registry, deployment: str) -> tuple[RolloutRecord, Verdict] | None:
    """If a canary bakes: judge it and, on a verdict, close it (rolling back on a breach).

    Returns the closed rollout and the verdict when this call closed it, else None.
    """
    _production, rollout = registry.serving_target(deployment)
    if rollout is None or rollout.state != RolloutState.BAKING or rollout.bake_until is None:
        return None
    now = datetime.now(UTC)
    workers = live_workers(registry, deployment, now)
    parts = [
        w.stats[rollout.version]
        for w in workers
        if w.rollout_id == rollout.id and rollout.version in w.stats
    ]
    evidence = capped_evidence(merge_by_app(parts))  # no app outweighs the others
    verdict = judge_canary(
        evidence, thresholds_for(registry, rollout.version), now, rollout.bake_until
    )
    if verdict.decision == Decision.WAIT:
        return None
    state = (
        RolloutState.COMPLETED
        if verdict.decision == Decision.COMPLETE
        else RolloutState.ROLLED_BACK
    )
    try:
        closed = registry.finish_rollout(
            rollout.id,
            state,
            reason=verdict.reason,
            details={"canary": verdict.figures, "workers": len(workers)},
            revert=state == RolloutState.ROLLED_BACK,
        )
    except RegistryConflictError:
        return None  # someone else closed it first, or moved the alias
    log.warning("rollout %s of %s: %s", rollout.id, rollout.version, verdict.reason)
    return closed, verdict
