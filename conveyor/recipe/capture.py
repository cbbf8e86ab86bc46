"""The recipe's ``serving.capture`` section: what each serving worker records of its traffic.

Kept beside the schema (which nests it under ``serving``) because the redact patterns are
checked here, when the recipe is checked: a pattern that does not compile is refused with
the key that holds it, long before a worker would meet it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from conveyor.capture_sink import PARQUET, sink_problem

__all__ = ["CaptureSection"]


class CaptureSection(BaseModel):
    """Request/response capture (`conveyor traffic` reads it): sampled, redacted, written
    by each worker off the request path, as Parquet under the home or into Postgres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False, description="Record requests and answers (off: nothing is written)."
    )
    sample: float = Field(
        default=1.0, ge=0, le=1, description="Share of requests recorded (1.0: every one)."
    )
    max_text_chars: PositiveInt = Field(
        default=2000, description="Request and answer texts are cut to this many characters."
    )
    redact: list[str] = Field(
        default_factory=list,
        description="Regexes whose matches become `[REDACTED]` before anything is written "
        "(e-mail addresses and card-like numbers always are).",
    )
    retention_days: PositiveInt = Field(
        default=30,
        description="Days of capture kept; older days (older rows in Postgres) are deleted "
        "by the workers.",
    )
    rotate_mb: float = Field(
        default=64.0, gt=0, description="A capture file is closed and published at this size."
    )
    rotate_seconds: float = Field(
        default=60.0,
        gt=0,
        description="... or at this age: what a worker captured is queryable within it.",
    )
    max_pending: PositiveInt = Field(
        default=10_000,
        description="Requests waiting to be written per worker; beyond, they are dropped "
        "and counted (an answer never waits for the capture).",
    )

    sink: str = Field(
        default=PARQUET,
        description="Where rows go: `parquet` (files under the home, one host) or "
        "`postgresql://USER@HOST[:PORT]/DATABASE` (one table, `conveyor_capture`, for "
        "replicas on several hosts; no password in the URL: PGPASSWORD or ~/.pgpass). "
        "While Postgres is down, rows are dropped and counted; serving goes on.",
    )

    @field_validator("sink")
    @classmethod
    def _sink_usable(cls, sink: str) -> str:
        problem = sink_problem(sink)
        if problem is not None:
            raise ValueError(problem)
        return sink

    @field_validator("redact")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact[{index}] {pattern!r} is not a regex: {exc}") from exc
        return patterns
