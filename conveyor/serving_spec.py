"""The serving spec: the few values of a recipe that serving reads, stored on each version.

Serving never re-parses the whole recipe (whose unknown keys are refused, so a later schema
change would make live workers refuse older versions). The spec is small, typed and
versioned; unknown keys are ignored, so a newer writer never breaks an older reader.
Rows registered before the spec existed get one derived leniently from their stored recipe.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from conveyor.recipe.capture import CaptureSection
from conveyor.recipe.schema import (
    BatchingSection,
    ModelSection,
    MonitorSection,
    Recipe,
    RollbackSection,
    ServingSection,
)

__all__ = [
    "SPEC_VERSION",
    "CaptureSpec",
    "MonitorSpec",
    "RollbackSpec",
    "ServingSpec",
    "spec_from_recipe_dict",
    "serving_spec_of",
]

SPEC_VERSION = 1


def _default(section: type[BaseModel], name: str) -> Any:
    """The recipe schema's default for ``name``: serving defaults are defined there, once."""
    return section.model_fields[name].get_default(call_default_factory=True)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RollbackSpec(_Spec):
    max_error_rate: float = _default(RollbackSection, "max_error_rate")
    max_p99_latency_ms: float = _default(RollbackSection, "max_p99_latency_ms")
    min_requests: int = _default(RollbackSection, "min_requests")


class MonitorSpec(_Spec):
    min_requests: int = _default(MonitorSection, "min_requests")
    max_label_psi: float = _default(MonitorSection, "max_label_psi")
    max_length_psi: float = _default(MonitorSection, "max_length_psi")
    max_unknown_token_rate: float = _default(MonitorSection, "max_unknown_token_rate")
    min_mean_confidence: float = _default(MonitorSection, "min_mean_confidence")


class CaptureSpec(_Spec):
    """What a worker records of a version's traffic (the recipe's ``serving.capture``)."""

    enabled: bool = _default(CaptureSection, "enabled")
    sample: float = Field(default=_default(CaptureSection, "sample"), ge=0, le=1)
    max_text_chars: int = Field(default=_default(CaptureSection, "max_text_chars"), ge=1)
    redact: tuple[str, ...] = tuple(_default(CaptureSection, "redact"))
    retention_days: int = Field(default=_default(CaptureSection, "retention_days"), ge=1)
    rotate_mb: float = Field(default=_default(CaptureSection, "rotate_mb"), gt=0)
    rotate_seconds: float = Field(default=_default(CaptureSection, "rotate_seconds"), gt=0)
    max_pending: int = Field(default=_default(CaptureSection, "max_pending"), ge=1)
    sink: str = _default(CaptureSection, "sink")


class ServingSpec(_Spec):
    """What a serving worker, the canary judge and the drift monitor need of a version."""

    spec_version: int = SPEC_VERSION
    backend: Literal["auto", "torch", "onnx"] = _default(ServingSection, "backend")
    max_length: int = Field(default=_default(ModelSection, "max_length"), ge=1)
    max_texts_per_request: int = Field(
        default=_default(ServingSection, "max_texts_per_request"), ge=1
    )
    max_text_chars: int = Field(default=_default(ServingSection, "max_text_chars"), ge=1)
    max_new_tokens: int = Field(default=_default(ServingSection, "max_new_tokens"), ge=1)
    batching: bool = _default(BatchingSection, "enabled")
    max_batch_size: int = Field(default=_default(BatchingSection, "max_batch_size"), ge=1)
    canary_percent: float = Field(default=_default(ServingSection, "canary_percent"), ge=0, le=100)
    bake_seconds: float = Field(default=_default(ServingSection, "bake_seconds"), ge=0)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ServingSpec:
        """The spec of a validated recipe, computed once at registration."""
        return spec_from_recipe_dict(recipe.model_dump(mode="json"))

    def as_record(self) -> dict[str, Any]:
        """The JSON stored on the version."""
        return self.model_dump(mode="json")


def _section(raw: Any, key: str) -> dict[str, Any]:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}


def spec_from_recipe_dict(recipe: dict[str, Any]) -> ServingSpec:
    """Pick the spec's keys out of a stored recipe dict; every other key is left alone."""
    serving = _section(recipe, "serving")
    batching = _section(serving, "batching")
    picked: dict[str, Any] = {
        key: serving[key]
        for key in (
            "backend",
            "max_texts_per_request",
            "max_text_chars",
            "max_new_tokens",
            "canary_percent",
            "bake_seconds",
        )
        if key in serving
    }
    if "max_length" in _section(recipe, "model"):
        picked["max_length"] = _section(recipe, "model")["max_length"]
    if "enabled" in batching:
        picked["batching"] = batching["enabled"]
    if "max_batch_size" in batching:
        picked["max_batch_size"] = batching["max_batch_size"]
    picked["rollback"] = _section(serving, "rollback")
    picked["monitor"] = _section(serving, "monitor")
    picked["capture"] = _section(serving, "capture")
    return ServingSpec.model_validate(picked)


class _HasSpec(Protocol):
    @property
    def serving_spec(self) -> dict[str, Any]: ...

    @property
    def recipe(self) -> dict[str, Any]: ...


def serving_spec_of(record: _HasSpec) -> ServingSpec:
    """The version's stored spec; for rows older than specs, derived from the stored recipe."""
    if record.serving_spec:
        return ServingSpec.model_validate(record.serving_spec)
    return spec_from_recipe_dict(record.recipe)
