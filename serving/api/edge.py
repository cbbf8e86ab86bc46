"""The ASGI edge in front of the model endpoints: body checks, API keys, the in-flight bound.

Runs before BentoML parses a request, so a refusal costs no model time and every refusal
is one JSON object ``{"error": ..., "field": ...}`` with a 4xx (or 503 / 429 with
``Retry-After``), never a 500: 415 a body that is not ``application/json``, 413 one over
``MAX_BODY_BYTES``, 400 invalid JSON (or nested deeper than the parser goes) or a body that
is not an object, 422 a field of the wrong type; then 401/403/429 from the
:class:`~serving.worker.access.Gate` (503 with ``Retry-After`` when the registry or Redis
cannot say: fail closed; the lookup runs off the event loop); then 503 when the worker
already holds ``max_in_flight`` model requests (no unbounded queue).

The OpenAI-compatible routes (:data:`OPENAI_PATHS`) pass the same gate (with the key's token
limits too) and bound, and refuse in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``; their fields are checked by :mod:`serving.api.openai.protocol` behind the edge.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from serving.api.openai.protocol import MAX_MESSAGES
from serving.api.openai.responses import error_body
from serving.api.validation import RequestError, status_of
from serving.refusal import Refusal, RefusalKind
from serving.worker.access import Refused, current_app, retry_after_header
from serving.worker.fleet import current_runtime

__all__ = [
    "MAX_BODY_BYTES",
    "MODEL_PATHS",
    "OPENAI_PATHS",
    "VIEW_PATHS",
    "EdgeGuard",
    "check_body",
    "parse_json",
]

log = logging.getLogger(__name__)

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models"})
MODEL_PATHS = frozenset({"/classify"}) | OPENAI_PATHS
VIEW_PATHS = frozenset({"/v1/status", "/metrics"})
MAX_BODY_BYTES = 1_000_000
_CONTAINERS = (dict, list)
MAX_JSON_DEPTH = 32  # a chat request nests 4 deep (body, messages, a message, its parts)
BODY_STATE = "conveyor_body"  # where the edge leaves the parsed body for the routes
_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "/classify": {"text": (str,), "texts": (list,), "top_k": (int,)},
}
_REQUIRED: dict[str, tuple[str, ...]] = {}
_NULLABLE = {"/classify": frozenset({"text", "texts"})}  # null there means "not given"


def _type_name(types: tuple[type, ...]) -> str:
    return {str: "a string", list: "a list of strings", int: "an integer"}.get(types[0], "a number")


def _nests_too_deeply(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects deeper than ``limit``: level by level over
    the containers only, stopping at the first level past the limit (no recursion to
    exhaust; a wide body of short scalars costs one pass over its containers)."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(child for child in children if isinstance(child, _CONTAINERS))
        level = below
    return False


def parse_json(content_type: str, body: bytes, max_list_items: int | None = None) -> dict[str, Any]:
    """The body as a JSON object, or RequestError (415, 400) saying why not. Parsed here
    once: the routes read this object (``BODY_STATE``), never the bytes again. A field that
    is a list of more than ``max_list_items`` is refused before the body is walked."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestError(415, "send the body as JSON with 'Content-Type: application/json'")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise RequestError(400, f"the body is not valid JSON ({where})", field="body") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "the body is not valid UTF-8 JSON", field="body") from exc
    except RecursionError as exc:  # nested past the parser's depth: never a request of ours
        raise RequestError(
            400, "the body is nested too deeply to be a request", field="body"
        ) from exc
    if not isinstance(data, dict):
        raise RequestError(400, "the body must be a JSON object", field="body")
    for name, value in data.items():  # a long list is refused before it is walked
        if max_list_items is not None and isinstance(value, list) and len(value) > max_list_items:
            message = f"'{name}' has {len(value)} items; at most {max_list_items} are accepted"
            raise RequestError(400, message, field=name)
    if _nests_too_deeply(data, MAX_JSON_DEPTH):
        raise RequestError(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    return data


def check_body(path: str, content_type: str, body: bytes) -> dict[str, Any]:
    """The parsed JSON object, or RequestError naming what is wrong with it."""
    data = parse_json(content_type, body)
    expected = _TYPES[path]
    for name, value in data.items():
        if name not in expected:
            raise RequestError(422, f"unknown field '{name}'", field=name)
        types = expected[name]
        if value is None and name in _NULLABLE.get(path, ()):
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise RequestError(422, f"'{name}' must be {_type_name(types)}", field=name)
        _check_unicode(name, value)
    for name in _REQUIRED.get(path, ()):
        if data.get(name) is None:
            raise RequestError(422, f"'{name}' is required", field=name)
    texts = data.get("texts")
    if isinstance(texts, list):
        for index, item in enumerate(texts):
            if not isinstance(item, str):
                raise RequestError(422, f"texts[{index}] must be a string", field=f"texts[{index}]")
    return data


def _check_unicode(name: str, value: Any) -> None:
    """A lone surrogate (``"\\ud800"``) parses as JSON but is no text: refuse it here."""
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                at = f"{name}[{index}]" if isinstance(value, list) else name
                raise RequestError(422, f"'{at}' is not valid Unicode text", field=at) from None


async def send_error(
    send: Callable[[Any], Awaitable[None]], exc: Refusal, openai: bool = False
) -> None:
    body: dict[str, Any] = {"error": exc.reason}
    if exc.field:
        body["field"] = exc.field
    if openai:
        body = error_body(exc)
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if exc.retry_after is not None or status_of(exc) in (429, 503):
        headers.append((b"retry-after", retry_after_header(exc.retry_after).encode()))
    await send({"type": "http.response.start", "status": status_of(exc), "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Callable[[], Awaitable[Any]]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client went away", field="body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


Router = Callable[[str, dict[str, str], Any], Any]  # (path, headers, parsed body) -> runtime


class EdgeGuard:
    """ASGI middleware; reads the worker's runtime through ``get_runtime`` (set at startup).

    A worker serving several deployments gives ``get_router``: then the body is read first,
    and the router picks the deployment's runtime (its gate, limits and bound) from it."""

    def __init__(
        self,
        app: Any,
        get_runtime: Callable[[], Any],
        get_router: Callable[[], Router | None] = lambda: None,
    ) -> None:
        self.app = app
        self.get_runtime = get_runtime
        self.get_router = get_router

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        runtime = self.get_runtime()
        if scope["type"] == "http" and scope["path"] in VIEW_PATHS and runtime is not None:
            if not await self._may_view(scope, runtime, send):
                return
        if scope["type"] != "http" or scope["path"] not in MODEL_PATHS or runtime is None:
            await self.app(scope, receive, send)
            return
        read: bytes | None = None
        router = self.get_router()
        if router is not None:
            routed = await self._route(scope, receive, send, runtime, router)
            if routed is None:
                return
            runtime, read = routed
        admitted = await self._admit(scope, receive, send, runtime, read)
        if admitted is None:
            return
        app, body = admitted
        runtime.metrics.admission.labels(runtime.deployment, app, "ok").inc()
        runtime.in_flight += 1
        runtime.metrics.in_flight.labels(runtime.deployment).inc()
        token = current_app.set(app)
        routed_to = current_runtime.set(runtime)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            runtime.in_flight -= 1
            runtime.metrics.in_flight.labels(runtime.deployment).dec()
            current_app.reset(token)
            current_runtime.reset(routed_to)

    async def _route(
        self, scope: Any, receive: Any, send: Any, first: Any, router: Router
    ) -> tuple[Any, bytes] | None:
        """The runtime of the deployment the request names, and its body; None when it
        names none served here (404, sent and counted here)."""
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        openai = path in OPENAI_PATHS
        try:
            body = await _read_body(receive)
            parsed: Any = None
            if openai and path != "/v1/models":
                try:
                    parsed = json.loads(body)
                except (ValueError, RecursionError):  # the deployment's parse says what
                    parsed = None
            return router(path, headers, parsed), body
        except Refusal as exc:
            first.metrics.refused(first.deployment, path, status_of(exc), "-")
            await send_error(send, exc, openai)
            return None

    async def _admit(
        self, scope: Any, receive: Any, send: Any, runtime: Any, read: bytes | None = None
    ) -> tuple[str, bytes] | None:
        """The calling app and the request's body (``read``: already read by the router),
        or None when the request was refused (the refusal is sent and counted here)."""
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        app = "-"
        openai = path in OPENAI_PATHS
        method = "GET" if path == "/v1/models" else "POST"
        try:
            if scope["method"] != method:
                raise RequestError(405, f"{path} takes {method}")
            authorization = headers.get("authorization")
            client = (scope.get("client") or (None,))[0]
            if authorization:  # a registry and maybe a Redis call: never on the event loop
                app = await asyncio.to_thread(runtime.gate.admit, authorization, client=client)
            else:
                app = runtime.gate.admit(None)
            body = read if read is not None else await _read_body(receive)
            if openai and method == "POST":
                content_type = headers.get("content-type", "")
                parsed = parse_json(content_type, body, max_list_items=MAX_MESSAGES)
                scope.setdefault("state", {})[BODY_STATE] = parsed
            elif not openai:
                check_body(path, headers.get("content-type", ""), body)
            if runtime.in_flight >= runtime.max_in_flight:
                raise Refused(
                    RefusalKind.UNAVAILABLE,
                    f"overloaded: {runtime.in_flight} requests in flight; retry shortly",
                    "overloaded",
                    app,
                    1.0,
                )
        except Refusal as exc:
            if isinstance(exc, Refused):
                runtime.metrics.admission.labels(runtime.deployment, exc.app, exc.outcome).inc()
            runtime.metrics.refused(runtime.deployment, path, status_of(exc), app)
            await send_error(send, exc, openai)
            return None
        except Exception:  # a defect of ours while admitting: answer at once, never hang
            log.exception("admitting a request to %s failed", path)
            runtime.metrics.admission.labels(runtime.deployment, app, "edge_error").inc()
            failure = RequestError(500, "the server failed while admitting the request")
            await send_error(send, failure, openai)
            return None
        return app, body

    async def _may_view(self, scope: Any, runtime: Any, send: Any) -> bool:
        """Beyond loopback, ``/v1/status`` and ``/metrics`` need a key too: they name
        versions, apps and traffic."""
        if not runtime.views_need_key:
            return True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            await asyncio.to_thread(runtime.gate.admit, headers.get("authorization"))
        except Refusal as exc:
            await send_error(send, exc)
            return False
        return True
