"""One answered exchange as the request path hands it over, and the rows it becomes.

:class:`Exchange` holds raw values only (building one costs a few hundred nanoseconds on
the event loop); :func:`rows_of` redacts and cuts its texts on the capture's thread.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.serving_spec import CaptureSpec
from serving.worker.redaction import Redactor, redactor_for

__all__ = ["Exchange", "rows_of"]

Messages = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request's text (or chat messages) and what was answered, with its figures."""

    version: str
    role: str
    app: str
    endpoint: str
    status: int
    latency_ms: float
    request: str | Messages
    answer: str | None = None
    score: float | None = None
    ttft_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    cache_hit: bool = False


def _request_text(request: str | Messages, redactor: Redactor, limit: int) -> str | None:
    if isinstance(request, str):
        return redactor.clean(request, limit)
    messages = [
        {"role": role, "content": redactor.clean(content, limit)} for role, content in request
    ]
    return json.dumps(messages, ensure_ascii=False)


def rows_of(
    spec: CaptureSpec, at: float, exchanges: Sequence[Exchange], deployment: str, worker: str
) -> list[dict[str, Any]]:
    """The Parquet rows (:data:`conveyor.capture_format.CAPTURE_SCHEMA`) of ``exchanges``,
    answered at ``at`` (seconds since the epoch), redacted and cut per ``spec``."""
    redactor = redactor_for(spec.redact)
    limit = spec.max_text_chars
    ts = datetime.fromtimestamp(at, UTC)
    return [
        {
            "id": uuid.uuid4().hex,
            "ts": ts,
            "deployment": deployment,
            "version": one.version,
            "role": one.role,
            "app": one.app,
            "endpoint": one.endpoint,
            "status": one.status,
            "latency_ms": one.latency_ms,
            "ttft_ms": one.ttft_ms,
            "tokens_in": one.tokens_in,
            "tokens_out": one.tokens_out,
            "finish_reason": one.finish_reason,
            "cache_hit": one.cache_hit,
            "request": _request_text(one.request, redactor, limit),
            "answer": redactor.clean(one.answer, limit),
            "score": one.score,
            "worker": worker,
        }
        for one in exchanges
    ]
