"""The endpoint's own OpenAPI document and Swagger page, true to what this worker serves.

BentoML's generated page names the service ``conveyor:dev`` with version ``None``, loads a
tag manager from the internet, documents 400/404/500 errors the edge never sends and lists
every route whatever the model. Here the document is built from the deployment and the
version that serves now: only the routes of its task, the request limits of its serving
spec, the real refusals (one ``{"error", "field"}`` shape; on the OpenAI-compatible routes of a
causal-lm version, OpenAI's ``{"error": {"message", "type", "param", "code"}}``) and examples
that answer 200, in English and in Chinese (served as UTF-8, not escaped).
:func:`openapi_document` is a pure function; :class:`OpenApiPages` serves it (ASGI).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from conveyor.serving_spec import ServingSpec
from conveyor.settings import Settings
from serving.api.edge import MAX_BODY_BYTES
from serving.api.openai.openapi import openai_paths, openai_schemas
from serving.api.openapi_parts import RETRY_HEADERS, VERSION_HEADER, examples, operation
from serving.api.validation import MAX_TOP_K

__all__ = ["DOCS_PATH", "ApiFacts", "OpenApiPages", "index_html", "openapi_document"]

DOCS_PATH = "/docs.json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_ROLE_HEADER = "#/components/headers/X-Model-Role"
_SPEC_DEFAULTS = ServingSpec()
_MAX_IN_FLIGHT = Settings.model_fields["serve_max_in_flight"].default  # the 503's bound
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
        {"error": f"top_k must be between 1 and {MAX_TOP_K}, not 0", "field": "top_k"},
    ),
    429: (
        "The API key is over its rate or its daily quota: wait `Retry-After` seconds.",
        {"error": "app 'shop' is over its rate limit"},
    ),
    500: ("The model failed on this input.", {"error": "the model failed: RuntimeError"}),
    503: (
        "The worker is overloaded or has no model loaded yet: retry after `Retry-After` seconds.",
        {"error": f"overloaded: {_MAX_IN_FLIGHT} requests in flight; retry shortly"},
    ),
}


_OPENAI_REFUSALS = (
    " (on the OpenAI-compatible `/v1` routes, OpenAI's `{error: {message, type, param, code}}`)"
)


@dataclass(frozen=True)
class ApiFacts:
    """What the document says, read from the worker: plain values, no runtime. The limits
    left out are the serving spec's defaults (which are the recipe schema's)."""

    deployment: str
    version: str | None
    task: str | None
    max_texts: int = _SPEC_DEFAULTS.max_texts_per_request
    max_chars: int = _SPEC_DEFAULTS.max_text_chars
    max_new_tokens: int = _SPEC_DEFAULTS.max_new_tokens
    keys_required: bool = False


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"200": ok}
    for status, (description, example) in _REFUSALS.items():
        headers = RETRY_HEADERS if status in (429, 503) else VERSION_HEADER
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
                "maximum": MAX_TOP_K,
                "default": 1,
                "description": "How many of the best labels to return with each result",
            },
        },
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
    }
    example = examples(
        {"text": "set a timer for five minutes", "top_k": 3},
        {"text": "帮我定一个五分钟的计时器", "top_k": 3},
    )
    ok = {
        "description": "A label for each text, in order, from the version named in the body "
        "and in `X-Model-Version`.",
        "headers": {**VERSION_HEADER, "X-Model-Role": {"$ref": _ROLE_HEADER}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Classified"}}},
    }
    summary = "Label one text or a list of texts"
    return operation("classify", summary, request, example, _responses(ok))


def _classify_schemas(facts: ApiFacts) -> dict[str, Any]:
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
    classified = {
        "type": "object",
        "required": ["version", "results"],
        "properties": {
            "version": {"type": "string", "example": facts.version or "demo:v1"},
            "results": {"type": "array", "items": result},
        },
    }
    return {"Classified": classified}


def _components(facts: ApiFacts) -> dict[str, Any]:
    """Only the shapes of the routes this worker serves: a classifier's page lists no
    completion schemas, a language model's no classification ones (no version yet: both)."""
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, for a person"},
            "field": {"type": "string", "description": "The field at fault, if one"},
        },
    }
    schemas: dict[str, Any] = {"Error": error}
    if facts.task != "causal-lm":
        schemas |= _classify_schemas(facts)
    if facts.task != "classification":
        schemas |= openai_schemas(facts.max_new_tokens)
    return {
        "schemas": schemas,
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


def openapi_document(facts: ApiFacts) -> dict[str, Any]:
    """The OpenAPI 3.1 document of what this worker serves now."""
    paths: dict[str, Any] = {}
    if facts.task == "classification":
        paths["/classify"] = _classify(facts)
    elif facts.task == "causal-lm":
        paths |= openai_paths(facts.deployment, facts.max_new_tokens)
    serving = f"version {facts.version}" if facts.version else "no version loaded yet"
    keys = (
        "Every model call needs `Authorization: Bearer <key>` (`conveyor keys create`)."
        if facts.keys_required
        else "No API key is required here; a key that is sent is checked."
    )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"conveyor: {facts.deployment}",
            "version": facts.version or "none",
            "description": f"The `{facts.deployment}` deployment, serving {serving}"
            f" ({facts.task or 'no task'}). Every response names the version that answered"
            f" in `X-Model-Version`; every refusal is one JSON object `{{error, field}}`"
            f"{_OPENAI_REFUSALS if facts.task == 'causal-lm' else ''}. {keys}",
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
            # Chinese as characters, not \uXXXX escapes: the raw JSON reads as the page does
            body = json.dumps(openapi_document(facts), ensure_ascii=False).encode()
            await _respond(send, body, b"application/json")
        else:
            title = f"conveyor: {facts.deployment} {facts.version or ''}".strip()
            await _respond(send, index_html(title).encode(), b"text/html; charset=utf-8")
