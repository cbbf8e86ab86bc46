"""Plain, frozen views of registry rows: what callers get back, never live ORM objects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "AliasMove",
    "ApiKeyRecord",
    "AuditRecord",
    "RolloutRecord",
    "RolloutState",
    "VersionRecord",
    "VersionStatus",
    "WorkerRecord",
    "record_of",
    "values_of",
]


class VersionStatus(StrEnum):
    REGISTERED = "registered"
    TRAINED = "trained"
    EVALUATED = "evaluated"
    REJECTED = "rejected"
    PACKAGED = "packaged"
    SERVING = "serving"
    RETIRED = "retired"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    version: str
    deployment: str
    number: int
    task: str
    base_model: str
    artifact_uri: str | None
    data_fingerprint: str | None
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    verdict: dict[str, Any] | None
    status: str
    created_at: datetime
    created_by: str
    serving_spec: dict[str, Any] = field(default_factory=dict)
    content_sha256: str | None = None
    lineage: dict[str, Any] | None = None  # the run that made it (flow_run_id, flow_run_url)


@dataclass(frozen=True, slots=True)
class AliasMove:
    deployment: str
    alias: str
    from_version: str | None
    to_version: str | None
    at: datetime
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    deployment: str | None
    version: str | None
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: int
    app: str
    key_prefix: str
    deployments: list[str]
    rate_per_second: float | None
    quota_per_day: int | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    tokens_per_minute: int | None = None  # prompt + completion tokens, for language models
    tokens_per_day: int | None = None
    may_pin_versions: bool = False  # may name a version (``deployment:vN``) as its model

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class RolloutState(StrEnum):
    CONVERGING = "converging"
    BAKING = "baking"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def open(self) -> bool:
        return self in (RolloutState.CONVERGING, RolloutState.BAKING)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    id: int
    deployment: str
    version: str
    previous: str | None
    kind: str
    canary_percent: float
    bake_seconds: float
    state: RolloutState
    started_at: datetime
    bake_until: datetime | None
    finished_at: datetime | None
    actor: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    worker: str
    deployment: str
    pid: int
    host: str
    started_at: datetime
    updated_at: datetime
    active_version: str | None
    standby_version: str | None
    canary_version: str | None
    rollout_id: int | None
    failures: dict[str, Any]
    stats: dict[str, Any]
    prewarmed_version: str | None = None  # loaded and checked, no traffic yet (a promotion's)
    url: str | None = None  # where clients reach it (http://host:port), when its server said


R = TypeVar("R", bound="DataclassInstance")
_Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _converter(hint: Any) -> _Convert:
    """How one column value becomes a record field: JSON copied (never shared with the
    session), a missing JSON object read as empty, enum strings as their enum."""
    if hint == dict[str, Any]:
        return lambda value: dict(value or {})
    if hint == dict[str, Any] | None:
        return lambda value: None if value is None else dict(value)
    if hint == list[str]:
        return lambda value: list(value or [])
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return hint
    return _same


@functools.cache
def _converters(cls: type[DataclassInstance]) -> tuple[tuple[str, _Convert], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in fields(cls))


def record_of(cls: type[R], row: object) -> R:
    """The record ``cls`` filled from the attributes of the same names on ``row``."""
    values = {name: convert(getattr(row, name)) for name, convert in _converters(cls)}
    return cls(**values)


def values_of(record: DataclassInstance) -> dict[str, Any]:
    """A record's fields by name (shallow: for writing it back as a row)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}
