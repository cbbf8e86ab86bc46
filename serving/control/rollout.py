"""Promote and roll back: verify the version, move the alias, wait until every worker serves it.

The workers do the loading and swapping (see :mod:`serving.worker.controller`); these functions
decide, write the registry (compare-and-set) and watch the workers' heartbeats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import NotFoundError, RegistryConflictError
from conveyor.registry import (
    Registry,
    RolloutRecord,
    RolloutState,
    VersionRecord,
    VersionStatus,
    WorkerRecord,
)
from conveyor.serving_spec import serving_spec_of
from serving.canary.bake import judge_rollout, live_workers
from serving.control.errors import ConvergenceError, PromotionRefused
from serving.worker.controller import PREWARM_ALIAS
from serving.worker.loading import load_failure, load_version, release_version

__all__ = [
    "Outcome",
    "last_served",
    "prewarm",
    "promote",
    "reconcile",
    "rollback",
    "verify_loads",
    "wait_converged",
]


@dataclass(frozen=True)
class Outcome:
    """What happened: the rollout as closed, the workers that serve it, the timings."""

    rollout: RolloutRecord
    workers: list[str]
    load_seconds: float
    converge_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def rolled_back(self) -> bool:
        return self.rollout.state == RolloutState.ROLLED_BACK


def verify_loads(registry: Registry, version: str, action: str) -> float:
    """Load and smoke-check here, before any traffic moves; refuse (audited) if it cannot serve."""
    record = registry.resolve(version)
    start = time.perf_counter()
    try:
        release_version(load_version(record))
    except Exception as exc:  # whatever the class: it cannot serve, so nothing moves
        reason = load_failure(exc)
        registry.audit(
            f"{action}.refused",
            deployment=record.deployment,
            version=version,
            reason=reason,
            details={"stage": "verify"},
        )
        raise PromotionRefused(f"{version} refused, nothing moved: {reason}") from exc
    return time.perf_counter() - start


def _holds(worker: WorkerRecord, version: str) -> bool:
    """Loaded and checked on this worker, whatever its role."""
    return version in (
        worker.prewarmed_version, worker.active_version,
        worker.canary_version, worker.standby_version,
    )  # fmt: skip


def prewarm(registry: Registry, deployment: str, version: str, timeout: float) -> float:
    """Have every live worker load and check ``version`` beside what it serves, before any
    traffic moves; the seconds it took. Best effort: a worker that refuses it, or does not
    finish within ``timeout``, is left to the rollout, which judges it as before."""
    start = time.monotonic()
    if not live_workers(registry, deployment):
        return 0.0
    registry.move_alias(
        deployment, PREWARM_ALIAS, version, reason=f"warm {version} on the workers first"
    )
    deadline = start + timeout
    while time.monotonic() < deadline:
        workers = live_workers(registry, deployment)
        if all(_holds(w, version) or version in w.failures for w in workers):
            break
        time.sleep(0.05)
    return time.monotonic() - start


def _clear_prewarm(registry: Registry, deployment: str, version: str) -> None:
    """The workers keep ``version`` if it serves, and release it otherwise."""
    try:
        registry.move_alias(
            deployment, PREWARM_ALIAS, None, reason=f"{version}'s rollout ended", expected=version
        )
    except RegistryConflictError:  # a newer promotion prewarms its own candidate
        pass


def _serves(worker: WorkerRecord, version: str) -> bool:
    return worker.active_version == version and worker.canary_version is None


def wait_converged(
    registry: Registry,
    deployment: str,
    version: str,
    timeout: float,
    *,
    canary: bool = False,
    before: int = 0,
) -> list[str]:
    """Until every live worker serves ``version`` (or has it as canary); ConvergenceError names
    the workers that did not, with the reason a worker gave for refusing it.

    ``before``: how many workers were live before the alias moved. When some were, no live
    worker at all is never "every worker serves it": they are loading, or gone."""
    deadline = time.monotonic() + timeout
    while True:
        workers = live_workers(registry, deployment)
        if not workers and before:
            if time.monotonic() > deadline:
                raise ConvergenceError(
                    f"after {timeout:g} s no live worker serves {version}; "
                    f"{before} were live before the alias moved"
                )
            time.sleep(0.1)
            continue
        failed = {w.worker: w.failures[version] for w in workers if version in w.failures}
        if failed:
            detail = "; ".join(f"{w}: {reason}" for w, reason in failed.items())
            raise ConvergenceError(f"workers refused {version}: {detail}")
        ok = [
            w for w in workers if (w.canary_version == version if canary else _serves(w, version))
        ]
        if len(ok) == len(workers):
            return [w.worker for w in workers]
        if time.monotonic() > deadline:
            lagging = ", ".join(
                f"{w.worker} (serves {w.active_version})" for w in workers if w not in ok
            )
            raise ConvergenceError(
                f"after {timeout:g} s these workers do not serve {version}: {lagging}"
            )
        time.sleep(0.1)


# Said when the record is written and read later (conveyor status shows it with that moment).
NO_LIVE_WORKER = "no live worker serves it yet: servers load it when they start"


def served_by(workers: list[str]) -> str:
    """What a finished rollout says about who serves it; never "all 0 workers"."""
    if not workers:
        return f"production moved; {NO_LIVE_WORKER}"
    if len(workers) == 1:
        return f"the 1 live worker serves it ({workers[0]})"
    return f"all {len(workers)} live workers serve it"


def _finish(
    registry: Registry, rollout: RolloutRecord, workers: list[str], reason: str
) -> RolloutRecord:
    closed = registry.finish_rollout(
        rollout.id, RolloutState.COMPLETED, reason=reason, details={"workers": workers}
    )
    registry.update_version(rollout.version, status=VersionStatus.SERVING, reason=reason)
    return closed


def _abort(registry: Registry, rollout: RolloutRecord, exc: ConvergenceError) -> None:
    """A worker refused the version: put production back (compare-and-set) and record why."""
    try:
        registry.finish_rollout(
            rollout.id, RolloutState.FAILED, reason=str(exc), revert=rollout.previous is not None
        )
    except RegistryConflictError:
        pass


def _bake(registry: Registry, rollout: RolloutRecord, timeout: float) -> RolloutRecord:
    """Judge the canary until a verdict closes the rollout (here or in a worker)."""
    deadline = time.monotonic() + rollout.bake_seconds + timeout
    while time.monotonic() < deadline:
        judge_rollout(registry, rollout.deployment)
        current = next(
            r for r in registry.rollouts(rollout.deployment, limit=20) if r.id == rollout.id
        )
        if not current.state.open:
            return current
        time.sleep(0.2)
    raise ConvergenceError(f"rollout {rollout.id} still baking after {timeout:g} s past its window")


def promote(
    registry: Registry,
    ref: str,
    *,
    canary_percent: float | None = None,
    bake_seconds: float | None = None,
    timeout: float = 60.0,
) -> Outcome:
    """Make ``ref`` the production version, through a canary when the percent and bake allow."""
    record = registry.resolve(ref)
    serving = serving_spec_of(record)
    percent = serving.canary_percent if canary_percent is None else canary_percent
    bake = serving.bake_seconds if bake_seconds is None else bake_seconds
    current = registry.alias(record.deployment, "production")
    if current == record.version:
        raise RegistryConflictError(f"{record.version} already serves {record.deployment}")
    load_seconds = verify_loads(registry, record.version, "promotion")
    before = len(live_workers(registry, record.deployment))
    if current is None:
        percent = 100.0  # nothing to compare a canary with
    try:
        warm = prewarm(registry, record.deployment, record.version, timeout)
        details: dict[str, Any] = {
            "verify_load_seconds": round(load_seconds, 3),
            "prewarm_seconds": round(warm, 3),
        }
        return _promote(registry, record, current, percent, bake, timeout, before, details)
    finally:
        _clear_prewarm(registry, record.deployment, record.version)


def _promote(
    registry: Registry,
    record: VersionRecord,
    current: str | None,
    percent: float,
    bake: float,
    timeout: float,
    before: int,
    details: dict[str, Any],
) -> Outcome:
    load_seconds = float(details["verify_load_seconds"])
    rollout = registry.start_rollout(
        record.deployment,
        record.version,
        kind="promote",
        reason=f"promote {record.version}",
        expected=current,
        canary_percent=percent,
        bake_seconds=bake,
        details=details,
    )
    start = time.monotonic()
    baking = rollout.state == RolloutState.BAKING
    try:
        wait_converged(
            registry, record.deployment, record.version, timeout, canary=baking, before=before
        )
    except ConvergenceError as exc:
        if "refused" in str(exc):
            _abort(registry, rollout, exc)
        raise
    if baking:
        rollout = _bake(registry, rollout, timeout)
        if rollout.state != RolloutState.COMPLETED:
            return Outcome(
                rollout,
                [],
                load_seconds,
                time.monotonic() - start,
                [str(rollout.details.get("outcome", rollout.reason))],
            )
        workers = wait_converged(
            registry, record.deployment, record.version, timeout, before=before
        )
        registry.update_version(record.version, status=VersionStatus.SERVING, reason=rollout.reason)
        return Outcome(
            rollout,
            workers,
            load_seconds,
            time.monotonic() - start,
            [str(rollout.details.get("outcome", rollout.reason))],
        )
    workers = wait_converged(registry, record.deployment, record.version, timeout, before=before)
    notes = [] if workers else [NO_LIVE_WORKER]
    closed = _finish(registry, rollout, workers, served_by(workers))
    return Outcome(closed, workers, load_seconds, time.monotonic() - start, notes)


def last_served(registry: Registry, deployment: str, exclude: str | None) -> str:
    """The newest version that really served (a completed rollout), other than ``exclude``."""
    for rollout in registry.rollouts(deployment):
        if rollout.state == RolloutState.COMPLETED and rollout.version != exclude:
            return rollout.version
    raise NotFoundError(f"{deployment} has no earlier version that served to roll back to")


def rollback(
    registry: Registry, deployment: str, to: str | None = None, *, timeout: float = 60.0
) -> Outcome:
    """Back to the last version that really served (or ``to``), verified to load first."""
    current = registry.alias(deployment, "production")
    target = registry.resolve(to).version if to else last_served(registry, deployment, current)
    if target == current:
        raise RegistryConflictError(f"{target} already serves {deployment}")
    load_seconds = verify_loads(registry, target, "rollback")
    before = len(live_workers(registry, deployment))
    try:
        warm = prewarm(registry, deployment, target, timeout)
        details = {"verify_load_seconds": round(load_seconds, 3), "prewarm_seconds": round(warm, 3)}
        return _roll_back(registry, deployment, target, current, timeout, before, details)
    finally:
        _clear_prewarm(registry, deployment, target)


def _roll_back(
    registry: Registry,
    deployment: str,
    target: str,
    current: str | None,
    timeout: float,
    before: int,
    details: dict[str, Any],
) -> Outcome:
    load_seconds = float(details["verify_load_seconds"])
    rollout = registry.start_rollout(
        deployment,
        target,
        kind="rollback",
        reason=f"rollback from {current}",
        expected=current,
        details=details,
    )
    start = time.monotonic()
    try:
        workers = wait_converged(registry, deployment, target, timeout, before=before)
    except ConvergenceError as exc:
        if "refused" in str(exc):
            _abort(registry, rollout, exc)
        raise
    reason = f"rolled back from {current}; {served_by(workers)}"
    closed = _finish(registry, rollout, workers, reason)
    notes = [] if workers else [NO_LIVE_WORKER]
    return Outcome(closed, workers, load_seconds, time.monotonic() - start, notes)


def reconcile(registry: Registry, deployment: str, timeout: float = 30.0) -> RolloutRecord | None:
    """Close a straight rollout whose promoting process died, once every live worker serves it.

    The alias had already moved (in the same transaction that opened the rollout), so the
    servers converge by themselves; this only records it. A baking canary needs nothing:
    the workers judge it. Returns the closed rollout, or None when nothing was open.
    """
    production, rollout = registry.serving_target(deployment)
    if rollout is None or rollout.state != RolloutState.CONVERGING:
        return None
    if rollout.version != production:
        return None
    workers = wait_converged(registry, deployment, rollout.version, timeout)
    reason = f"reconciled: {served_by(workers)} (its promoter had stopped)"
    return _finish(registry, rollout, workers, reason)
