"""The registry: versions with lineage, aliases with history, audit log, API keys.

Each public method is one short transaction. Version numbers are allocated per
deployment inside the transaction that inserts the row; on Postgres a collision
between two writers is retried, on SQLite ``BEGIN IMMEDIATE`` serialises them.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from types import EllipsisType
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from conveyor.errors import ConveyorError, NotFoundError, RegistryConflictError
from conveyor.registry.engine import create_registry_engine
from conveyor.registry.migrate import upgrade_to_head
from conveyor.registry.records import (
    AliasMove,
    ApiKeyRecord,
    AuditRecord,
    RolloutRecord,
    RolloutState,
    VersionRecord,
    VersionStatus,
    WorkerRecord,
)
from conveyor.registry.tables import (
    AliasHistory,
    AliasPointer,
    ApiKey,
    ApiUsage,
    AuditEntry,
    ModelVersion,
    Rollout,
    WorkerHeartbeat,
    utcnow,
)

__all__ = ["API_KEY_PREFIX", "Registry", "hash_api_key"]

API_KEY_PREFIX = "cvy_"
_VERSION_REF = re.compile(
    r"^(?P<deployment>[a-z0-9][a-z0-9-]*)(?::(?P<tag>v\d+|latest)|@(?P<alias>[a-z]+))$"
)
_WRITE_RETRIES = 8
T = TypeVar("T")


def hash_api_key(plaintext: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is a sufficient, fast hash."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _version_record(row: ModelVersion) -> VersionRecord:
    return VersionRecord(
        version=row.version,
        deployment=row.deployment,
        number=row.number,
        task=row.task,
        base_model=row.base_model,
        artifact_uri=row.artifact_uri,
        data_fingerprint=row.data_fingerprint,
        recipe=dict(row.recipe),
        metrics=dict(row.metrics or {}),
        verdict=dict(row.verdict) if row.verdict is not None else None,
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        serving_spec=dict(row.serving_spec or {}),
        content_sha256=row.content_sha256,
    )


def _alias_move(row: AliasHistory) -> AliasMove:
    return AliasMove(
        deployment=row.deployment,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
    )


def _audit_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        deployment=row.deployment,
        version=row.version,
        reason=row.reason,
        details=dict(row.details or {}),
    )


def _key_record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        app=row.app,
        key_prefix=row.key_prefix,
        deployments=list(row.deployments),
        rate_per_second=row.rate_per_second,
        quota_per_day=row.quota_per_day,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


def _rollout_record(row: Rollout) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        deployment=row.deployment,
        version=row.version,
        previous=row.previous,
        kind=row.kind,
        canary_percent=row.canary_percent,
        bake_seconds=row.bake_seconds,
        state=RolloutState(row.state),
        started_at=row.started_at,
        bake_until=row.bake_until,
        finished_at=row.finished_at,
        actor=row.actor,
        reason=row.reason,
        details=dict(row.details or {}),
    )


def _worker_record(row: WorkerHeartbeat) -> WorkerRecord:
    return WorkerRecord(
        worker=row.worker,
        deployment=row.deployment,
        pid=row.pid,
        host=row.host,
        started_at=row.started_at,
        updated_at=row.updated_at,
        active_version=row.active_version,
        standby_version=row.standby_version,
        canary_version=row.canary_version,
        rollout_id=row.rollout_id,
        failures=dict(row.failures or {}),
        stats=dict(row.stats or {}),
    )


class Registry:
    """Typed access to the registry database. Open with :meth:`open` or :meth:`from_url`."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, actor: str, migrate: bool = True) -> Registry:
        engine = create_registry_engine(url)
        if migrate:
            upgrade_to_head(engine)
        return cls(engine, actor)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run one write transaction, retrying lost races (unique collisions, lock time-outs)."""
        for attempt in range(_WRITE_RETRIES):
            try:
                with self._session() as session:
                    return work(session)
            except (IntegrityError, OperationalError) as exc:
                retriable = isinstance(exc, OperationalError) or "uq_version_number" in str(exc)
                retriable = retriable or "aliases_pkey" in str(exc) or "UNIQUE" in str(exc)
                retriable = retriable or "api_usage_pkey" in str(exc)
                if not retriable or attempt == _WRITE_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # jittered backoff
        raise AssertionError("unreachable")

    # -- versions ---------------------------------------------------------------------------

    def register_version(
        self,
        deployment: str,
        *,
        task: str,
        base_model: str,
        recipe: dict[str, Any],
        data_fingerprint: str | None = None,
        artifact_uri: str | None = None,
        metrics: dict[str, Any] | None = None,
        status: VersionStatus = VersionStatus.REGISTERED,
        reason: str = "",
        serving_spec: dict[str, Any] | None = None,
        content_sha256: str | None = None,
    ) -> VersionRecord:
        """Add a version with the next number of its deployment (``name:vN``)."""

        def work(session: Session) -> VersionRecord:
            if session.get_bind().dialect.name == "postgresql":
                # Number allocation is serialised per deployment for the transaction: without
                # it, 8 writers under load can collide on max+1 more often than any retry budget.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"conveyor.version.{deployment}"},
                )
            latest = session.scalar(
                select(func.max(ModelVersion.number)).where(ModelVersion.deployment == deployment)
            )
            number = (latest or 0) + 1
            row = ModelVersion(
                version=f"{deployment}:v{number}",
                deployment=deployment,
                number=number,
                task=task,
                base_model=base_model,
                artifact_uri=artifact_uri,
                data_fingerprint=data_fingerprint,
                recipe=recipe,
                metrics=metrics or {},
                verdict=None,
                serving_spec=serving_spec or {},
                content_sha256=content_sha256,
                status=str(status),
                created_at=utcnow(),
                created_by=self.actor,
            )
            session.add(row)
            session.flush()
            self._add_audit(
                session,
                "version.registered",
                deployment,
                row.version,
                reason,
                {"status": str(status), "data_fingerprint": data_fingerprint},
            )
            return _version_record(row)

        return self._write(work)

    def resolve(self, ref: str) -> VersionRecord:
        """``name:vN``, ``name:latest`` or ``name@alias`` to a version."""
        match = _VERSION_REF.match(ref.strip())
        if not match:
            raise ConveyorError(
                f"{ref!r} is not a version reference: use DEPLOYMENT:vN, DEPLOYMENT:latest "
                "or DEPLOYMENT@ALIAS (e.g. clinc150-minilm:v3)"
            )
        deployment, tag, alias = match["deployment"], match["tag"], match["alias"]
        version: str | None
        with self._session() as session:
            if alias:
                pointer = session.get(AliasPointer, (deployment, alias))
                if pointer is None or pointer.version is None:
                    raise NotFoundError(f"{deployment} has no version under alias '{alias}'")
                version = pointer.version
            elif tag == "latest":
                version = session.scalar(
                    select(ModelVersion.version)
                    .where(ModelVersion.deployment == deployment)
                    .order_by(ModelVersion.number.desc())
                    .limit(1)
                )
                if version is None:
                    raise NotFoundError(f"deployment '{deployment}' has no versions")
            else:
                version = f"{deployment}:{tag}"
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if row is None:
                raise NotFoundError(f"no version {version} in the registry")
            return _version_record(row)

    def has_version(self, version: str) -> bool:
        with self._session() as session:
            found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))
            return found is not None

    def get_version(self, version: str) -> VersionRecord:
        return self.resolve(version)

    def list_versions(
        self, deployment: str | None = None, limit: int | None = None
    ) -> list[VersionRecord]:
        query = select(ModelVersion).order_by(ModelVersion.deployment, ModelVersion.number.desc())
        if deployment:
            query = query.where(ModelVersion.deployment == deployment)
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return [_version_record(row) for row in session.scalars(query)]

    def update_version(
        self,
        version: str,
        *,
        status: VersionStatus | None = None,
        metrics: dict[str, Any] | None = None,
        verdict: dict[str, Any] | None = None,
        artifact_uri: str | None = None,
        reason: str = "",
        serving_spec: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """Record what a stage learnt about a version; a status change is audited."""

        def work(session: Session) -> VersionRecord:
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if row is None:
                raise NotFoundError(f"no version {version} in the registry")
            if metrics is not None:
                row.metrics = {**(row.metrics or {}), **metrics}
            if verdict is not None:
                row.verdict = verdict
            if artifact_uri is not None:
                row.artifact_uri = artifact_uri
            if serving_spec is not None:
                row.serving_spec = serving_spec
            if status is not None and status != row.status:
                details = {"from": row.status, "to": str(status)}
                row.status = str(status)
                self._add_audit(session, "version.status", row.deployment, version, reason, details)
            session.flush()
            return _version_record(row)

        return self._write(work)

    # -- aliases ------------------------------------------------------------------------------

    def alias(self, deployment: str, alias: str) -> str | None:
        with self._session() as session:
            pointer = session.get(AliasPointer, (deployment, alias))
            return pointer.version if pointer else None

    def aliases(self, deployment: str) -> dict[str, str | None]:
        with self._session() as session:
            rows = session.scalars(
                select(AliasPointer).where(AliasPointer.deployment == deployment)
            )
            return {row.alias: row.version for row in rows}

    def move_alias(
        self,
        deployment: str,
        alias: str,
        to_version: str | None,
        *,
        reason: str,
        expected: str | None | EllipsisType = ...,
    ) -> AliasMove:
        """Point ``alias`` at ``to_version`` (None clears it), with history and audit.

        ``expected``: the version the caller believes is current; if someone moved the
        alias meanwhile, nothing changes and RegistryConflictError says who won.
        """
        return self._write(
            lambda session: self._move_alias(
                session, deployment, alias, to_version, reason=reason, expected=expected
            )
        )

    def _move_alias(
        self,
        session: Session,
        deployment: str,
        alias: str,
        to_version: str | None,
        *,
        reason: str,
        expected: str | None | EllipsisType = ...,
    ) -> AliasMove:
        """The body of :meth:`move_alias`, inside a caller's transaction."""
        if to_version is not None:
            target = session.scalar(select(ModelVersion).where(ModelVersion.version == to_version))
            if target is None:
                raise NotFoundError(f"no version {to_version} in the registry")
            if target.deployment != deployment:
                raise ConveyorError(
                    f"{to_version} belongs to {target.deployment}, not {deployment}"
                )
        pointer = session.scalar(
            select(AliasPointer)
            .where(AliasPointer.deployment == deployment, AliasPointer.alias == alias)
            .with_for_update()
        )
        current = pointer.version if pointer else None
        if expected is not ... and expected != current:
            raise RegistryConflictError(
                f"{deployment}@{alias} is {current}, not {expected}: someone moved it first"
            )
        now = utcnow()
        if pointer is None:
            pointer = AliasPointer(deployment=deployment, alias=alias)
            session.add(pointer)
        pointer.version = to_version
        pointer.updated_at = now
        pointer.updated_by = self.actor
        history = AliasHistory(
            deployment=deployment,
            alias=alias,
            from_version=current,
            to_version=to_version,
            at=now,
            actor=self.actor,
            reason=reason,
        )
        session.add(history)
        details = {"alias": alias, "from": current, "to": to_version}
        self._add_audit(session, "alias.moved", deployment, to_version, reason, details)
        session.flush()
        return _alias_move(history)

    def alias_history(self, deployment: str, alias: str | None = None) -> list[AliasMove]:
        query = select(AliasHistory).where(AliasHistory.deployment == deployment)
        if alias:
            query = query.where(AliasHistory.alias == alias)
        with self._session() as session:
            return [_alias_move(row) for row in session.scalars(query.order_by(AliasHistory.id))]

    # -- audit --------------------------------------------------------------------------------

    def _add_audit(
        self,
        session: Session,
        action: str,
        deployment: str | None,
        version: str | None,
        reason: str,
        details: dict[str, Any] | None,
    ) -> None:
        session.add(
            AuditEntry(
                at=utcnow(),
                actor=self.actor,
                action=action,
                deployment=deployment,
                version=version,
                reason=reason,
                details=details or {},
            )
        )

    def audit(
        self,
        action: str,
        *,
        deployment: str | None = None,
        version: str | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log."""
        self._write(
            lambda session: self._add_audit(session, action, deployment, version, reason, details)
        )

    def audit_log(
        self, deployment: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        if deployment:
            query = query.where(AuditEntry.deployment == deployment)
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return [_audit_record(row) for row in session.scalars(query)]

    # -- API keys -----------------------------------------------------------------------------

    def create_api_key(
        self,
        app: str,
        deployments: Sequence[str],
        *,
        rate_per_second: float | None = None,
        quota_per_day: int | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """Make a key for ``app``; the plaintext is returned once and never stored."""
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)

        def work(session: Session) -> ApiKeyRecord:
            row = ApiKey(
                app=app,
                key_prefix=plaintext[:12],
                key_hash=hash_api_key(plaintext),
                deployments=list(deployments),
                rate_per_second=rate_per_second,
                quota_per_day=quota_per_day,
                created_at=utcnow(),
                created_by=self.actor,
                revoked_at=None,
            )
            session.add(row)
            session.flush()
            details = {
                "key_prefix": row.key_prefix,
                "deployments": list(deployments),
                "rate_per_second": rate_per_second,
                "quota_per_day": quota_per_day,
            }
            self._add_audit(session, "key.created", None, None, f"key for {app}", details)
            return _key_record(row)

        return self._write(work), plaintext

    def list_api_keys(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        query = select(ApiKey).order_by(ApiKey.app, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self._session() as session:
            return [_key_record(row) for row in session.scalars(query)]

    def revoke_api_keys(self, app: str, reason: str = "") -> list[ApiKeyRecord]:
        """Revoke every active key of ``app``; NotFoundError if it has none."""

        def work(session: Session) -> list[ApiKeyRecord]:
            rows = list(
                session.scalars(
                    select(ApiKey).where(ApiKey.app == app, ApiKey.revoked_at.is_(None))
                )
            )
            if not rows:
                raise NotFoundError(f"app '{app}' has no active API keys")
            now = utcnow()
            for row in rows:
                row.revoked_at = now
            details = {"key_prefixes": [row.key_prefix for row in rows]}
            self._add_audit(session, "key.revoked", None, None, reason or f"revoke {app}", details)
            session.flush()
            return [_key_record(row) for row in rows]

        return self._write(work)

    def verify_api_key(self, plaintext: str) -> ApiKeyRecord | None:
        """The active key matching ``plaintext``, or None."""
        digest = hash_api_key(plaintext)
        with self._session() as session:
            row = session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
            return _key_record(row) if row else None

    def add_usage(self, day: str, counts: dict[str, tuple[int, int]]) -> None:
        """Add ``{app: (requests, refused)}`` to the day's usage (workers flush their counts)."""

        def work(session: Session) -> None:
            for app, (requests, refused) in sorted(counts.items()):
                row = session.get(ApiUsage, (app, day))
                if row is None:
                    session.add(ApiUsage(app=app, day=day, requests=requests, refused=refused))
                    session.flush()
                else:
                    row.requests += requests
                    row.refused += refused

        if counts:
            self._write(work)

    def usage(self, day: str) -> dict[str, tuple[int, int]]:
        """``{app: (requests, refused)}`` on one UTC day (``YYYY-MM-DD``)."""
        with self._session() as session:
            rows = session.scalars(select(ApiUsage).where(ApiUsage.day == day))
            return {row.app: (row.requests, row.refused) for row in rows}

    # -- rollouts and serving workers ---------------------------------------------------------

    def start_rollout(
        self,
        deployment: str,
        version: str,
        *,
        kind: str,
        reason: str,
        expected: str | None,
        canary_percent: float = 100.0,
        bake_seconds: float = 0.0,
        details: dict[str, Any] | None = None,
    ) -> RolloutRecord:
        """Move ``production`` to ``version`` (compare-and-set) and open a rollout, atomically.

        A canary (``0 < canary_percent < 100`` and ``bake_seconds > 0``) starts baking: the
        workers split traffic until :meth:`finish_rollout`. Open rollouts are superseded.
        """
        baking = 0 < canary_percent < 100 and bake_seconds > 0

        def work(session: Session) -> RolloutRecord:
            self._move_alias(
                session, deployment, "production", version, reason=reason, expected=expected
            )
            now = utcnow()
            for row in session.scalars(
                select(Rollout).where(
                    Rollout.deployment == deployment,
                    Rollout.state.in_([RolloutState.CONVERGING, RolloutState.BAKING]),
                )
            ):
                row.state = str(RolloutState.SUPERSEDED)
                row.finished_at = now
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
                actor=self.actor,
                reason=reason,
                details=details or {},
            )
            session.add(row)
            session.flush()
            audit = {"rollout": row.id, "from": expected, "canary_percent": row.canary_percent}
            audit["bake_seconds"] = row.bake_seconds
            self._add_audit(session, f"{kind}.started", deployment, version, reason, audit)
            return _rollout_record(row)

        return self._write(work)

    def finish_rollout(
        self,
        rollout_id: int,
        state: RolloutState,
        *,
        reason: str,
        details: dict[str, Any] | None = None,
        revert: bool = False,
    ) -> RolloutRecord:
        """Close an open rollout (compare-and-set on its state); ``revert`` moves the alias back.

        RegistryConflictError when someone closed it first, or moved the alias meanwhile.
        """

        def work(session: Session) -> RolloutRecord:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id} in the registry")
            if not RolloutState(row.state).open:
                raise RegistryConflictError(f"rollout {rollout_id} is already {row.state}")
            if revert:
                self._move_alias(
                    session,
                    row.deployment,
                    "production",
                    row.previous,
                    reason=reason,
                    expected=row.version,
                )
            row.state = str(state)
            row.finished_at = utcnow()
            row.details = {**(row.details or {}), **(details or {}), "outcome": reason}
            action = f"{row.kind}.{state}"
            audit = {"rollout": row.id, **(details or {})}
            self._add_audit(session, action, row.deployment, row.version, reason, audit)
            session.flush()
            return _rollout_record(row)

        return self._write(work)

    def rollouts(self, deployment: str, limit: int | None = None) -> list[RolloutRecord]:
        """Newest first."""
        query = select(Rollout).where(Rollout.deployment == deployment)
        query = query.order_by(Rollout.id.desc())
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return [_rollout_record(row) for row in session.scalars(query)]

    def serving_target(self, deployment: str) -> tuple[str | None, RolloutRecord | None]:
        """The ``production`` version and the newest rollout, read in one transaction."""
        with self._session() as session:
            pointer = session.get(AliasPointer, (deployment, "production"))
            latest = session.scalar(
                select(Rollout)
                .where(Rollout.deployment == deployment)
                .order_by(Rollout.id.desc())
                .limit(1)
            )
            return (
                pointer.version if pointer else None,
                _rollout_record(latest) if latest else None,
            )

    def heartbeat(self, record: WorkerRecord) -> None:
        """Insert or refresh one worker's row (what it serves, its figures)."""

        def work(session: Session) -> None:
            row = session.get(WorkerHeartbeat, record.worker)
            if row is None:
                row = WorkerHeartbeat(worker=record.worker)
                session.add(row)
            row.deployment = record.deployment
            row.pid = record.pid
            row.host = record.host
            row.started_at = record.started_at
            row.updated_at = record.updated_at
            row.active_version = record.active_version
            row.standby_version = record.standby_version
            row.canary_version = record.canary_version
            row.rollout_id = record.rollout_id
            row.failures = record.failures
            row.stats = record.stats

        self._write(work)

    def workers(self, deployment: str | None = None) -> list[WorkerRecord]:
        query = select(WorkerHeartbeat).order_by(WorkerHeartbeat.worker)
        if deployment:
            query = query.where(WorkerHeartbeat.deployment == deployment)
        with self._session() as session:
            return [_worker_record(row) for row in session.scalars(query)]

    def forget_worker(self, worker: str) -> None:
        def work(session: Session) -> None:
            row = session.get(WorkerHeartbeat, worker)
            if row is not None:
                session.delete(row)

        self._write(work)
