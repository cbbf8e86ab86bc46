"""Model versions: numbered per deployment (``name:vN``), with lineage and a forward status.

Numbers are allocated inside the transaction that inserts the row. On Postgres an advisory
lock per deployment serialises allocation (8 writers under load otherwise collide on max+1
more often than any retry budget); on SQLite ``BEGIN IMMEDIATE`` already does.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.registry._audit import add_audit
from conveyor.registry._store import Store
from conveyor.registry.records import VersionRecord, VersionStatus, record_of
from conveyor.registry.tables import AliasPointer, ModelVersion, utcnow

__all__ = ["list_versions", "register_version", "resolve", "update_version", "version_exists"]

_VERSION_REF = re.compile(
    r"^(?P<deployment>[a-z0-9][a-z0-9-]*)(?::(?P<tag>v\d+|latest)|@(?P<alias>[a-z]+))$"
)


def _next_number(session: Session, deployment: str) -> int:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"conveyor.version.{deployment}"},
        )
    latest = session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.deployment == deployment)
    )
    return (latest or 0) + 1


def register_version(
    store: Store,
    deployment: str,
    facts: dict[str, Any],
    status: VersionStatus,
    reason: str,
) -> VersionRecord:
    """``facts``: the version's columns besides its name, number, status and authorship."""

    def work(session: Session) -> VersionRecord:
        number = _next_number(session, deployment)
        row = ModelVersion(
            version=f"{deployment}:v{number}",
            deployment=deployment,
            number=number,
            status=str(status),
            created_at=utcnow(),
            created_by=store.actor,
            **facts,
        )
        session.add(row)
        session.flush()
        details = {"status": str(status), "data_fingerprint": facts.get("data_fingerprint")}
        add_audit(
            session, store.actor, "version.registered", deployment, row.version, reason, details
        )
        return record_of(VersionRecord, row)

    return store.write(work)


def _version_named(session: Session, ref: str) -> str:
    match = _VERSION_REF.match(ref.strip())
    if not match:
        raise ConveyorError(
            f"{ref!r} is not a version reference: use DEPLOYMENT:vN, DEPLOYMENT:latest "
            "or DEPLOYMENT@ALIAS (e.g. clinc150-minilm:v3)"
        )
    deployment, tag, alias = match["deployment"], match["tag"], match["alias"]
    if alias:
        pointer = session.get(AliasPointer, (deployment, alias))
        if pointer is None or pointer.version is None:
            raise NotFoundError(f"{deployment} has no version under alias '{alias}'")
        return pointer.version
    if tag == "latest":
        latest = session.scalar(
            select(ModelVersion.version)
            .where(ModelVersion.deployment == deployment)
            .order_by(ModelVersion.number.desc())
            .limit(1)
        )
        if latest is None:
            raise NotFoundError(f"deployment '{deployment}' has no versions")
        return latest
    return f"{deployment}:{tag}"


def _row(session: Session, version: str) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"no version {version} in the registry")
    return row


def resolve(store: Store, ref: str) -> VersionRecord:
    with store.read() as session:
        return record_of(VersionRecord, _row(session, _version_named(session, ref)))


def version_exists(store: Store, version: str) -> bool:
    with store.read() as session:
        found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))
        return found is not None


def list_versions(store: Store, deployment: str | None, limit: int | None) -> list[VersionRecord]:
    query = select(ModelVersion).order_by(ModelVersion.deployment, ModelVersion.number.desc())
    if deployment:
        query = query.where(ModelVersion.deployment == deployment)
    if limit:
        query = query.limit(limit)
    with store.read() as session:
        return [record_of(VersionRecord, row) for row in session.scalars(query)]


def update_version(
    store: Store,
    version: str,
    *,
    status: VersionStatus | None,
    metrics: dict[str, Any] | None,
    verdict: dict[str, Any] | None,
    artifact_uri: str | None,
    serving_spec: dict[str, Any] | None,
    reason: str,
    lineage: dict[str, Any] | None = None,
) -> VersionRecord:
    """Arguments left None keep what is stored; ``metrics`` and ``lineage`` merge into the
    stored ones."""

    def work(session: Session) -> VersionRecord:
        row = _row(session, version)
        if metrics is not None:
            row.metrics = {**(row.metrics or {}), **metrics}
        if lineage is not None:
            row.lineage = {**(row.lineage or {}), **lineage}
        if verdict is not None:
            row.verdict = verdict
        if artifact_uri is not None:
            row.artifact_uri = artifact_uri
        if serving_spec is not None:
            row.serving_spec = serving_spec
        if status is not None and status != row.status:
            details = {"from": row.status, "to": str(status)}
            row.status = str(status)
            add_audit(
                session, store.actor, "version.status", row.deployment, version, reason, details
            )
        session.flush()
        return record_of(VersionRecord, row)

    return store.write(work)
