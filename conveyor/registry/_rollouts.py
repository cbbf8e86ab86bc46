"""Rollouts: a promotion or rollback of ``production``, its canary and bake window, its end.

Opening one moves the alias (compare-and-set) and supersedes the open ones in the same
transaction. Closing one is a conditional update on its state, so of two closers racing
(a worker's verdict and the promoter's, say) exactly one wins and the other is told.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from conveyor.errors import NotFoundError, RegistryConflictError
from conveyor.registry._aliases import move_alias_in
from conveyor.registry._audit import add_audit
from conveyor.registry._store import Store
from conveyor.registry.records import RolloutRecord, RolloutState, record_of
from conveyor.registry.tables import AliasPointer, Rollout, utcnow

__all__ = ["OPEN_STATES", "finish_rollout", "rollouts", "serving_target", "start_rollout"]

OPEN_STATES = tuple(str(state) for state in RolloutState if state.open)


def start_rollout(
    store: Store,
    deployment: str,
    version: str,
    *,
    kind: str,
    reason: str,
    expected: str | None,
    canary_percent: float,
    bake_seconds: float,
    details: dict[str, Any] | None,
) -> RolloutRecord:
    baking = 0 < canary_percent < 100 and bake_seconds > 0

    def work(session: Session) -> RolloutRecord:
        move_alias_in(
            session,
            store.actor,
            deployment,
            "production",
            version,
            reason=reason,
            expected=expected,
        )
        now = utcnow()
        session.execute(
            update(Rollout)
            .where(Rollout.deployment == deployment, Rollout.state.in_(OPEN_STATES))
            .values(state=str(RolloutState.SUPERSEDED), finished_at=now)
        )
        row = Rollout(
            deployment=deployment,
            version=version,
            previous=expected,
            kind=kind,
            canary_percent=canary_percent if baking else 100.0,
            bake_seconds=bake_seconds if baking else 0.0,
            state=str(RolloutState.BAKING if baking else RolloutState.CONVERGING),
            started_at=now,
            bake_until=now + timedelta(seconds=bake_seconds) if baking else None,
            finished_at=None,
            actor=store.actor,
            reason=reason,
            details=details or {},
        )
        session.add(row)
        session.flush()
        audit = {"rollout": row.id, "from": expected, "canary_percent": row.canary_percent}
        audit["bake_seconds"] = row.bake_seconds
        add_audit(session, store.actor, f"{kind}.started", deployment, version, reason, audit)
        return record_of(RolloutRecord, row)

    return store.write(work)


def _close(session: Session, rollout_id: int, state: RolloutState) -> Rollout:
    """Set the state of an open rollout; the row stays locked to the end of the transaction."""
    closed = session.scalar(
        update(Rollout)
        .where(Rollout.id == rollout_id, Rollout.state.in_(OPEN_STATES))
        .values(state=str(state), finished_at=utcnow())
        .returning(Rollout.id)
        .execution_options(synchronize_session=False)
    )
    row = session.get(Rollout, rollout_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id} in the registry")
    if closed is None:
        raise RegistryConflictError(f"rollout {rollout_id} is already {row.state}")
    return row


def finish_rollout(
    store: Store,
    rollout_id: int,
    state: RolloutState,
    *,
    reason: str,
    details: dict[str, Any] | None,
    revert: bool,
) -> RolloutRecord:
    def work(session: Session) -> RolloutRecord:
        row = _close(session, rollout_id, state)
        if revert:
            move_alias_in(
                session,
                store.actor,
                row.deployment,
                "production",
                row.previous,
                reason=reason,
                expected=row.version,
            )
        row.details = {**(row.details or {}), **(details or {}), "outcome": reason}
        audit = {"rollout": row.id, **(details or {})}
        action = f"{row.kind}.{state}"
        add_audit(session, store.actor, action, row.deployment, row.version, reason, audit)
        session.flush()
        return record_of(RolloutRecord, row)

    return store.write(work)


def rollouts(store: Store, deployment: str, limit: int | None) -> list[RolloutRecord]:
    """Newest first."""
    query = select(Rollout).where(Rollout.deployment == deployment).order_by(Rollout.id.desc())
    if limit:
        query = query.limit(limit)
    with store.read() as session:
        return [record_of(RolloutRecord, row) for row in session.scalars(query)]


def serving_target(store: Store, deployment: str) -> tuple[str | None, RolloutRecord | None]:
    with store.read() as session:
        pointer = session.get(AliasPointer, (deployment, "production"))
        latest = session.scalar(
            select(Rollout)
            .where(Rollout.deployment == deployment)
            .order_by(Rollout.id.desc())
            .limit(1)
        )
        record = record_of(RolloutRecord, latest) if latest else None
        return (pointer.version if pointer else None, record)
