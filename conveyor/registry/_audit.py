"""The append-only audit log: who did what, when and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.registry._store import Store
from conveyor.registry.records import AuditRecord, record_of
from conveyor.registry.tables import AuditEntry, utcnow

__all__ = ["add_audit", "audit", "audit_log"]


def add_audit(
    session: Session,
    actor: str,
    action: str,
    deployment: str | None,
    version: str | None,
    reason: str,
    details: dict[str, Any] | None,
) -> None:
    """Append one entry inside the caller's transaction (it commits or vanishes with it)."""
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor,
            action=action,
            deployment=deployment,
            version=version,
            reason=reason,
            details=details or {},
        )
    )


def audit(
    store: Store,
    action: str,
    deployment: str | None,
    version: str | None,
    reason: str,
    details: dict[str, Any] | None,
) -> None:
    store.write(
        lambda session: add_audit(
            session, store.actor, action, deployment, version, reason, details
        )
    )


def audit_log(store: Store, deployment: str | None, limit: int | None) -> list[AuditRecord]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if deployment:
        query = query.where(AuditEntry.deployment == deployment)
    if limit:
        query = query.limit(limit)
    with store.read() as session:
        return [record_of(AuditRecord, row) for row in session.scalars(query)]
