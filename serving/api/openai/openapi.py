"""The OpenAI-compatible routes' part of the OpenAPI document.

The request schemas are the parser's own models (:func:`~serving.api.openai.protocol.
request_schema`), so the document refuses what the server refuses; the version's
``serving.max_new_tokens`` is the bound on the tokens a request may ask for.
"""

from __future__ import annotations

from typing import Any

from serving.api.edge import MAX_BODY_BYTES
from serving.api.openai.protocol import Kind, request_schema
from serving.api.openapi_parts import RETRY_HEADERS, VERSION_HEADER, examples, operation

__all__ = ["openai_paths", "openai_schemas"]

_REFUSALS: dict[int, tuple[str, str, str | None, str | None]] = {
    400: (
        "A field is unknown, of the wrong type or over the version's limits (`param` names it), "
        "`n` > 1, or the prompt plus `max_tokens` exceed the model's context (both numbers named).",
        "invalid_request_error",
        "max_tokens",
        None,
    ),
    401: ("Missing, malformed, unknown or revoked API key.", "authentication_error", None,
          "invalid_api_key"),
    403: ("The API key may not call this deployment.", "permission_error", None,
          "model_not_allowed"),
    404: ("`model` is neither this deployment nor a version this worker holds.",
          "invalid_request_error", "model", "model_not_found"),
    413: (f"The body is over {MAX_BODY_BYTES:,} bytes.", "invalid_request_error", "body", None),
    415: ("The body is not sent as application/json.", "invalid_request_error", None, None),
    429: ("Over the key's requests or tokens per minute or day: wait `Retry-After` seconds.",
          "rate_limit_error", None, "rate_limit_exceeded"),
    500: ("The model failed on this input.", "server_error", None, None),
    503: ("Overloaded or no model loaded yet: retry after `Retry-After` seconds.",
          "server_error", None, "overloaded"),
}  # fmt: skip
_OPERATIONS: dict[Kind, tuple[str, str, str, str]] = {  # name, summary, answer, path
    "chat": ("chat_completions", "Chat completion (OpenAI-compatible)", "ChatCompletion",
             "/v1/chat/completions"),
    "completion": ("completions", "Text completion (OpenAI-compatible)", "Completion",
                   "/v1/completions"),
}  # fmt: skip


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": ok}
    for status, (description, kind, param, code) in _REFUSALS.items():
        example = {"error": {"message": description, "type": kind, "param": param, "code": code}}
        schema = {"$ref": "#/components/schemas/OpenAIError"}
        found[str(status)] = {
            "description": description,
            "headers": RETRY_HEADERS if status in (429, 503) else VERSION_HEADER,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    return found


def _ok(schema: str) -> dict[str, Any]:
    return {
        "description": "The answer (JSON), or with `stream: true` server-sent events "
        "`data: {chunk}` ending with `data: [DONE]`; the version in `system_fingerprint`.",
        "headers": VERSION_HEADER,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }


_ASKS: dict[Kind, tuple[str, str]] = {  # English, Chinese
    "chat": ("Describe a cheap restaurant by the river.", "推荐一家河边的便宜餐馆。"),
    "completion": ("The capital of France is", "中国的首都是"),
}


def _examples(kind: Kind, deployment: str, max_new_tokens: int) -> dict[str, Any]:
    def body(text: str) -> dict[str, Any]:
        if kind == "chat":
            messages = [{"role": "user", "content": text}]
            return {
                "model": deployment,
                "messages": messages,
                "max_tokens": min(32, max_new_tokens),
            }
        return {"model": deployment, "prompt": text, "max_tokens": min(16, max_new_tokens)}

    english, chinese = _ASKS[kind]
    return examples(body(english), body(chinese))


def _models() -> dict[str, Any]:
    ok = {
        "description": "This deployment, then each version this worker holds (OpenAI's list).",
        "headers": VERSION_HEADER,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    responses = {k: v for k, v in _responses(ok).items() if k in ("200", "401", "403")}
    return {
        "get": {
            "operationId": "models",
            "summary": "The models this server serves (OpenAI-compatible)",
            "tags": ["model"],
            "responses": responses,
        }
    }


def openai_paths(deployment: str, max_new_tokens: int) -> dict[str, Any]:
    """``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``."""
    paths: dict[str, Any] = {}
    for kind, (name, summary, answer, path) in _OPERATIONS.items():
        request, _ = request_schema(kind, max_new_tokens)
        named = _examples(kind, deployment, max_new_tokens)
        paths[path] = operation(name, summary, request, named, _responses(_ok(answer)))
    paths["/v1/models"] = _models()
    return paths


def _answer_schema(kind: str) -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": [kind]},
            "created": {"type": "integer"},
            "model": {"type": "string", "description": "The version that answered"},
            "system_fingerprint": {"type": "string", "description": "The same version"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {
                "type": "object",
                "properties": {
                    "prompt_tokens": count,
                    "completion_tokens": count,
                    "total_tokens": count,
                },
            },
        },
    }


def openai_schemas(max_new_tokens: int) -> dict[str, Any]:
    """The component schemas the OpenAI routes refer to: the error, the answers, and the
    parts of the request bodies (a message, a text part, the stream options)."""
    nullable = {"type": ["string", "null"]}
    error = {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {**nullable, "description": "The field at fault"},
            "code": {**nullable, "description": "e.g. model_not_found"},
        },
    }
    schemas: dict[str, Any] = {}
    for kind in _OPERATIONS:
        schemas |= request_schema(kind, max_new_tokens)[1]
    return schemas | {
        "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": error}},
        "ChatCompletion": _answer_schema("chat.completion"),
        "Completion": _answer_schema("text_completion"),
    }
