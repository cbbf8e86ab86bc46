"""The endpoint's own OpenAPI document and Swagger page, true to what this worker serves.

BentoML's generated page names the service ``conveyor:dev`` with version ``None``, loads a
tag manager from the internet, documents 400/404/500 errors the edge never sends and lists
every route whatever the model. Here the document is built from the deployment and the
version that serves now: only the routes of its task, the request limits of its serving
spec, the real refusals (one ``{"error", "field"}`` shape; on the OpenAI-compatible routes of a
causal-lm version, OpenAI's ``{"error": {"message", "type", "param", "code"}}``) and examples
that answer 200.
:func:`openapi_document` is a pure function; :class:`OpenApiPages` serves it (ASGI).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from serving.api.edge import MAX_BODY_BYTES

__all__ = ["DOCS_PATH", "ApiFacts", "OpenApiPages", "index_html", "openapi_document"]

DOCS_PATH = "/docs.json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_ROLE_HEADER = "#/components/headers/X-Model-Role"
_VERSION_HEADER = {"X-Model-Version": {"$ref": "#/components/headers/X-Model-Version"}}
_RETRY_HEADERS = {**_VERSION_HEADER, "Retry-After": {"$ref": "#/components/headers/Retry-After"}}
_REFUSALS: dict[int, tuple[str, dict[str, str]]] = {
    400: (
        "The body is not valid JSON, or not a JSON object.",
        {"error": "the body must be a JSON object", "field": "body"},
    ),
    401: (
        "Missing, malformed, unknown or revoked API key "
        "(when keys are required, or a cvy_ key is sent).",
        {"error": "missing API key: send 'Authorization: Bearer <key>'"},
    ),
    403: (
        "The API key may not call this deployment.",
        {"error": "app 'shop' may not call this deployment"},
    ),
    413: (
        f"The body is over {MAX_BODY_BYTES:,} bytes.",
        {"error": f"the body is over {MAX_BODY_BYTES} bytes", "field": "body"},
    ),
    415: (
        "The body is not sent as application/json.",
        {"error": "send the body as JSON with 'Content-Type: application/json'"},
    ),
    422: (
        "A field is missing, unknown, of the wrong type, or over the version's limits; "
        "`field` names it.",
        {"error": "top_k must be between 1 and 100, not 0", "field": "top_k"},
    ),
    429: (
        "The API key is over its rate or its daily quota: wait `Retry-After` seconds.",
        {"error": "app 'shop' is over its rate limit"},
    ),
    500: ("The model failed on this input.", {"error": "the model failed: RuntimeError"}),
    503: (
        "The worker is overloaded or has no model loaded yet: retry after `Retry-After` seconds.",
        {"error": "overloaded: 256 requests in flight; retry shortly"},
    ),
}


@dataclass(frozen=True)
class ApiFacts:
    """What the document says, read from the worker: plain values, no runtime."""

    deployment: str
    version: str | None
    task: str | None
    max_texts: int = 64
    max_chars: int = 2000
    max_new_tokens: int = 128
    keys_required: bool = False


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": ok}
    for status, (description, example) in _REFUSALS.items():
        headers = _RETRY_HEADERS if status in (429, 503) else _VERSION_HEADER
        found[str(status)] = {
            "description": description,
            "headers": headers,
            "content": {"application/json": {"schema": _ERROR, "example": example}},
        }
    return found


def _text(facts: ApiFacts, what: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": facts.max_chars,
        "pattern": r"\S",
        "description": f"{what} (not blank, at most {facts.max_chars:,} characters)",
    }


def _classify(facts: ApiFacts) -> dict[str, Any]:
    request = {
        "type": "object",
        "additionalProperties": False,
        "description": "Give exactly one of `text` or `texts`.",
        "properties": {
            "text": _text(facts, "One text to label"),
            "texts": {
                "type": "array",
                "minItems": 1,
                "maxItems": facts.max_texts,
                "items": _text(facts, "A text"),
                "description": f"Up to {facts.max_texts} texts, labelled in one call",
            },
            "top_k": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": 1,
                "description": "How many of the best labels to return with each result",
            },
        },
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
    }
    example = {"text": "set a timer for five minutes", "top_k": 3}
    ok = {
        "description": "A label for each text, in order, from the version named in the body "
        "and in `X-Model-Version`.",
        "headers": {
            **_VERSION_HEADER,
            "X-Model-Role": {"$ref": "#/components/headers/X-Model-Role"},
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Classified"}}},
    }
    return _operation("classify", "Label one text or a list of texts", request, example, ok)


_OPENAI_REFUSALS: dict[int, tuple[str, str, str | None, str | None]] = {
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


def _openai_responses(ok: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": ok}
    for status, (description, kind, param, code) in _OPENAI_REFUSALS.items():
        example = {"error": {"message": description, "type": kind, "param": param, "code": code}}
        schema = {"$ref": "#/components/schemas/OpenAIError"}
        found[str(status)] = {
            "description": description,
            "headers": _RETRY_HEADERS if status in (429, 503) else _VERSION_HEADER,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    return found


def _sampling(facts: ApiFacts) -> dict[str, Any]:
    tokens = {"type": "integer", "minimum": 1, "maximum": facts.max_new_tokens}
    return {
        "model": {
            "type": "string",
            "description": f"`{facts.deployment}` (the canary split decides the version), or a "
            "version this worker holds to pin it (GET /v1/models)",
            "example": facts.deployment,
        },
        "max_tokens": {**tokens, "description": "At most the version's serving.max_new_tokens"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 1},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1},
        "stop": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}},
            ]
        },
        "seed": {"type": "integer"},
        "stream": {"type": "boolean", "default": False},
        "stream_options": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "n": {"type": "integer", "enum": [1], "description": "One choice per request"},
        "user": {"type": "string"},
    }


def _openai_ok(schema: str) -> dict[str, Any]:
    return {
        "description": "The answer (JSON), or with `stream: true` server-sent events "
        "`data: {chunk}` ending with `data: [DONE]`; the version in `system_fingerprint`.",
        "headers": _VERSION_HEADER,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }


def _chat(facts: ApiFacts) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
            "content": {"type": "string"},
        },
    }
    request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "messages"],
        "properties": {
            **_sampling(facts),
            "messages": {"type": "array", "minItems": 1, "items": message},
            "max_completion_tokens": {
                "type": "integer", "minimum": 1, "maximum": facts.max_new_tokens,
            },
        },
    }  # fmt: skip
    example = {
        "model": facts.deployment,
        "messages": [{"role": "user", "content": "Describe a cheap restaurant by the river."}],
        "max_tokens": min(32, facts.max_new_tokens),
    }
    operation = _operation(
        "chat_completions", "Chat completion (OpenAI-compatible)", request, example, {}
    )
    operation["post"]["responses"] = _openai_responses(_openai_ok("ChatCompletion"))
    return operation


def _completions(facts: ApiFacts) -> dict[str, Any]:
    prompt = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}},
        ]
    }
    request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "prompt"],
        "properties": {**_sampling(facts), "prompt": prompt},
    }
    example = {
        "model": facts.deployment,
        "prompt": "The capital of France is",
        "max_tokens": min(16, facts.max_new_tokens),
    }
    operation = _operation(
        "completions", "Text completion (OpenAI-compatible)", request, example, {}
    )
    operation["post"]["responses"] = _openai_responses(_openai_ok("Completion"))
    return operation


def _models() -> dict[str, Any]:
    ok = {
        "description": "This deployment, then each version this worker holds (OpenAI's list).",
        "headers": _VERSION_HEADER,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    responses = {k: v for k, v in _openai_responses(ok).items() if k in ("200", "401", "403")}
    return {
        "get": {
            "operationId": "models",
            "summary": "The models this server serves (OpenAI-compatible)",
            "tags": ["model"],
            "responses": responses,
        }
    }


def _operation(
    name: str, summary: str, request: dict[str, Any], example: dict[str, Any], ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": name,
            "summary": summary,
            "tags": ["model"],
            "parameters": [{"$ref": "#/components/parameters/X-Canary-Key"}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request, "example": example}},
            },
            "responses": _responses(ok),
        }
    }


def _components(facts: ApiFacts) -> dict[str, Any]:
    scored = {
        "type": "object",
        "required": ["label", "score"],
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    }
    result = {
        "type": "object",
        "required": ["label", "score", "top_k"],
        "properties": {
            "label": {"type": "string", "description": "The best label"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "top_k": {"type": "array", "items": scored, "description": "Best labels first"},
        },
    }
    components: dict[str, Any] = {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "What is wrong, for a person"},
                    "field": {"type": "string", "description": "The field at fault, if one"},
                },
            },
            "Classified": {
                "type": "object",
                "required": ["version", "results"],
                "properties": {
                    "version": {"type": "string", "example": facts.version or "demo:v1"},
                    "results": {"type": "array", "items": result},
                },
            },
            "OpenAIError": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "param", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "param": {"nullable": True, "description": "The field at fault"},
                            "code": {"nullable": True, "description": "e.g. model_not_found"},
                        },
                    }
                },
            },
            "ChatCompletion": _answer_schema("chat.completion"),
            "Completion": _answer_schema("text_completion"),
        },
        "headers": {
            "X-Model-Version": {
                "description": "The version that answered (or serves now, for a refusal)",
                "schema": {"type": "string"},
            },
            "X-Model-Role": {
                "description": "`active`, or `canary` while a candidate bakes",
                "schema": {"type": "string", "enum": ["active", "canary"]},
            },
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
        },
        "parameters": {
            "X-Canary-Key": {
                "name": "X-Canary-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "Any stable id (a user, a session): the same key stays on the "
                "same side of a canary split",
            }
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    # Only the shapes of the routes this worker serves: a classifier's page lists no
    # completion schemas, a language model's no classification ones.
    wanted = (
        {"Error", "Classified"}
        if facts.task == "classification"
        else {"Error", "OpenAIError", "ChatCompletion", "Completion"}
        if facts.task == "causal-lm"
        else set(components["schemas"])
    )
    components["schemas"] = {k: v for k, v in components["schemas"].items() if k in wanted}
    return components


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


def openapi_document(facts: ApiFacts) -> dict[str, Any]:
    """The OpenAPI 3.0 document of what this worker serves now."""
    paths: dict[str, Any] = {}
    if facts.task == "classification":
        paths["/classify"] = _classify(facts)
    elif facts.task == "causal-lm":
        paths["/v1/chat/completions"] = _chat(facts)
        paths["/v1/completions"] = _completions(facts)
        paths["/v1/models"] = _models()
    serving = f"version {facts.version}" if facts.version else "no version loaded yet"
    keys = (
        "Every model call needs `Authorization: Bearer <key>` (`conveyor keys create`)."
        if facts.keys_required
        else "No API key is required here; a key that is sent is checked."
    )
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"conveyor: {facts.deployment}",
            "version": facts.version or "none",
            "description": f"The `{facts.deployment}` deployment, serving {serving}"
            f" ({facts.task or 'no task'}). Every response names the version that answered"
            f" in `X-Model-Version`; every refusal is one JSON object `{{error, field}}` (on the"
            " OpenAI-compatible `/v1` routes, OpenAI's `{error: {message, type, param, code}}`)."
            f" {keys}",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "model", "description": "Calls to the model"},
            {"name": "operations", "description": "Health, metrics and the worker's status"},
        ],
        "paths": {**paths, **_operations()},
        "components": _components(facts),
    }
    if facts.keys_required:
        document["security"] = [{"bearer": []}]
    return document


def _operations() -> dict[str, Any]:
    def get(summary: str, content: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "OK", "content": {content: {}}}},
            }
        }

    return {
        "/readyz": get("Ready: a model is loaded and answered its smoke set", "text/plain"),
        "/livez": get("Alive", "text/plain"),
        "/metrics": get("Prometheus metrics (conveyor_* series)", "text/plain"),
        "/v1/status": get(
            "Versions loaded in this worker, their roles and figures", "application/json"
        ),
    }


def index_html(title: str) -> str:
    """The Swagger page: local assets only (nothing is loaded from outside)."""
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{escape(title)}</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: ".{DOCS_PATH}", dom_id: "#swagger-ui", deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
"""


Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class OpenApiPages:
    """ASGI middleware answering ``GET /`` and ``GET /docs.json``; ``facts`` reads the worker."""

    def __init__(self, app: Any, facts: Callable[[], ApiFacts | None]) -> None:
        self.app = app
        self.facts = facts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        facts = self.facts() if path in ("/", DOCS_PATH) and scope["method"] == "GET" else None
        if facts is None:
            await self.app(scope, receive, send)
        elif path == DOCS_PATH:
            body = json.dumps(openapi_document(facts)).encode()
            await _respond(send, body, b"application/json")
        else:
            title = f"conveyor: {facts.deployment} {facts.version or ''}".strip()
            await _respond(send, index_html(title).encode(), b"text/html; charset=utf-8")
