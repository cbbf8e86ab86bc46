"""Aliases (production, candidate, ...): a pointer per deployment, every move kept in order."""

from __future__ import annotations

from types import EllipsisType

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.errors import ConveyorError, NotFoundError, RegistryConflictError
from conveyor.registry._audit import add_audit
from conveyor.registry._store import Store
from conveyor.registry.records import AliasMove, record_of
from conveyor.registry.tables import AliasHistory, AliasPointer, ModelVersion, utcnow

__all__ = ["alias", "alias_history", "aliases", "move_alias", "move_alias_in"]


def alias(store: Store, deployment: str, name: str) -> str | None:
    with store.read() as session:
        pointer = session.get(AliasPointer, (deployment, name))
        return pointer.version if pointer else None


def aliases(store: Store, deployment: str) -> dict[str, str | None]:
    with store.read() as session:
        rows = session.scalars(select(AliasPointer).where(AliasPointer.deployment == deployment))
        return {row.alias: row.version for row in rows}


def _check_target(session: Session, deployment: str, to_version: str) -> None:
    target = session.scalar(select(ModelVersion).where(ModelVersion.version == to_version))
    if target is None:
        raise NotFoundError(f"no version {to_version} in the registry")
    if target.deployment != deployment:
        raise ConveyorError(f"{to_version} belongs to {target.deployment}, not {deployment}")


def move_alias_in(
    session: Session,
    actor: str,
    deployment: str,
    name: str,
    to_version: str | None,
    *,
    reason: str,
    expected: str | None | EllipsisType,
) -> AliasMove:
    """Move an alias inside the caller's transaction; the pointer row is locked first, so a
    stale ``expected`` raises RegistryConflictError (saying who won) and changes nothing."""
    if to_version is not None:
        _check_target(session, deployment, to_version)
    pointer = session.scalar(
        select(AliasPointer)
        .where(AliasPointer.deployment == deployment, AliasPointer.alias == name)
        .with_for_update()
    )
    current = pointer.version if pointer else None
    if expected is not ... and expected != current:
        raise RegistryConflictError(
            f"{deployment}@{name} is {current}, not {expected}: someone moved it first"
        )
    now = utcnow()
    if pointer is None:
        pointer = AliasPointer(deployment=deployment, alias=name)
        session.add(pointer)
    pointer.version = to_version
    pointer.updated_at = now
    pointer.updated_by = actor
    history = AliasHistory(
        deployment=deployment,
        alias=name,
        from_version=current,
        to_version=to_version,
        at=now,
        actor=actor,
        reason=reason,
    )
    session.add(history)
    details = {"alias": name, "from": current, "to": to_version}
    add_audit(session, actor, "alias.moved", deployment, to_version, reason, details)
    session.flush()
    return record_of(AliasMove, history)


def move_alias(
    store: Store,
    deployment: str,
    name: str,
    to_version: str | None,
    *,
    reason: str,
    expected: str | None | EllipsisType,
) -> AliasMove:
    return store.write(
        lambda session: move_alias_in(
            session, store.actor, deployment, name, to_version, reason=reason, expected=expected
        )
    )


def alias_history(store: Store, deployment: str, name: str | None) -> list[AliasMove]:
    """Oldest first."""
    query = select(AliasHistory).where(AliasHistory.deployment == deployment)
    if name:
        query = query.where(AliasHistory.alias == name)
    with store.read() as session:
        rows = session.scalars(query.order_by(AliasHistory.id))
        return [record_of(AliasMove, row) for row in rows]
