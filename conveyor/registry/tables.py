"""The registry's tables (SQLAlchemy 2.0 declarative). Schema changes go through Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AliasHistory",
    "AliasPointer",
    "ApiKey",
    "ApiUsage",
    "AuditEntry",
    "Base",
    "ModelVersion",
    "Rollout",
    "WorkerHeartbeat",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UtcDateTime}


class ModelVersion(Base):
    """One trained model: immutable facts plus a status that moves forward."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("deployment", "number", name="uq_version_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    deployment: Mapped[str] = mapped_column(String(64), index=True)
    number: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(32))
    base_model: Mapped[str] = mapped_column(Text)
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    data_fingerprint: Mapped[str | None] = mapped_column(String(128))
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What serving needs of the version (typed and versioned by conveyor.serving_spec), and
    # the SHA-256 over every file of its model folder, checked before it takes traffic.
    serving_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # What made it beyond its data and recipe: the orchestrator's run (id, URL, name).
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))


class AliasPointer(Base):
    """Where an alias (production, candidate, ...) of a deployment points now."""

    __tablename__ = "aliases"

    deployment: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.version"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256))


class AliasHistory(Base):
    """Every move of every alias, in order; never updated or deleted."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_lookup", "deployment", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[str | None] = mapped_column(String(128))
    to_version: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """Append-only log: who did what, when, and why (database triggers refuse edits)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An application's key: only its SHA-256 is stored, with what it may call and how often."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    deployments: Mapped[list[str]] = mapped_column(JSON)
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    quota_per_day: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(Integer)
    may_pin_versions: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiUsage(Base):
    """Requests an application made on one UTC day: answered, and refused over rate or quota."""

    __tablename__ = "api_usage"

    app: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)


class Rollout(Base):
    """One promotion or rollback of a deployment: its canary, bake window and outcome."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_lookup", "deployment", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(128))
    previous: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    canary_percent: Mapped[float] = mapped_column(Float)
    bake_seconds: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    bake_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WorkerHeartbeat(Base):
    """What one serving worker has loaded and its per-version request figures, refreshed often."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(64), index=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    active_version: Mapped[str | None] = mapped_column(String(128))
    standby_version: Mapped[str | None] = mapped_column(String(128))
    canary_version: Mapped[str | None] = mapped_column(String(128))
    rollout_id: Mapped[int | None] = mapped_column(Integer)
    failures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prewarmed_version: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(String(512))
