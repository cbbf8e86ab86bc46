"""The OpenAI-compatible answers: whole responses, stream chunks, the model list, refusals.

Pure functions of plain values building OpenAI's shapes; :func:`error_response` is the one
place an OpenAI refusal becomes an HTTP response (its status from
:func:`serving.api.validation.status_of`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from serving.api.openai.protocol import Kind
from serving.api.validation import status_of
from serving.engine.params import TokenEvent
from serving.refusal import Refusal

__all__ = [
    "DONE",
    "chunk",
    "completion_body",
    "error_body",
    "error_response",
    "models_body",
    "sse",
    "usage",
]

DONE = b"data: [DONE]\n\n"
_TYPES = {  # status -> OpenAI's error type
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {  # an edge refusal's outcome -> OpenAI's error code
    "unauthorized": "invalid_api_key",
    "forbidden": "model_not_allowed",
    "rate_limited": "rate_limit_exceeded",
    "tokens_limited": "rate_limit_exceeded",
    "quota_exceeded": "insufficient_quota",
    "overloaded": "overloaded",
    "unavailable": "service_unavailable",
}


def error_body(exc: Refusal) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` for any refusal of ours."""
    code = getattr(exc, "code", None) or _CODES.get(getattr(exc, "outcome", ""), None)
    kind = _TYPES.get(status_of(exc), "server_error")
    return {"error": {"message": exc.reason, "type": kind, "param": exc.field, "code": code}}


def error_response(exc: Refusal, version: str | None = None) -> JSONResponse:
    """A refusal as OpenAI's error body, with its status (``Retry-After`` when retryable)."""
    headers = {"X-Model-Version": version} if version else {}
    if exc.retry_after is not None or status_of(exc) in (429, 503):
        headers["Retry-After"] = str(max(1, round(exc.retry_after or 1)))
    return JSONResponse(error_body(exc), status_code=status_of(exc), headers=headers)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _head(kind: Kind, rid: str, created: int, version: str, chunked: bool) -> dict[str, Any]:
    objects = {
        ("chat", False): "chat.completion",
        ("chat", True): "chat.completion.chunk",
        ("completion", False): "text_completion",
        ("completion", True): "text_completion",
    }
    return {
        "id": rid,
        "object": objects[(kind, chunked)],
        "created": created,
        "model": version,
        "system_fingerprint": version,
    }


def completion_body(
    kind: Kind, rid: str, created: int, version: str, text: str, last: TokenEvent
) -> dict[str, Any]:
    """The whole answer of a request that was not streamed."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": last.finish_reason}
    if kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    body = _head(kind, rid, created, version, chunked=False)
    return body | {
        "choices": [choice],
        "usage": usage(last.prompt_tokens, last.completion_tokens),
    }


def chunk(
    kind: Kind,
    rid: str,
    created: int,
    version: str,
    *,
    text: str | None = None,
    role: bool = False,
    finish_reason: str | None = None,
    with_usage: bool = False,
    counts: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One stream chunk; ``counts`` (prompt, completion) makes it the last, usage-only chunk
    (empty choices); ``with_usage`` puts ``"usage": null`` on the others, as OpenAI does."""
    body = _head(kind, rid, created, version, chunked=True)
    if counts is not None:
        return body | {"choices": [], "usage": usage(*counts)}
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if kind == "chat":
        delta: dict[str, str] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        choice["delta"] = delta
    else:
        choice["text"] = text or ""
    body["choices"] = [choice]
    if with_usage:
        body["usage"] = None
    return body


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event: ``data: {json}`` and a blank line."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def models_body(deployment: str, versions: list[str], created: int) -> dict[str, Any]:
    """``GET /v1/models``: the deployment (what ``model`` names), then each version the
    caller's key may pin (none for an ordinary key)."""
    entry = {"object": "model", "created": created, "owned_by": "conveyor"}
    data = [{"id": deployment, **entry}] + [{"id": v, **entry} for v in versions]
    return {"object": "list", "data": data}
