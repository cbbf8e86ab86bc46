"""The ASGI edge in front of the model endpoints: body checks, API keys, the in-flight bound.

Runs before BentoML parses a request, so a refusal costs no model time and every refusal
is one JSON object ``{"error": ..., "field": ...}`` with a 4xx (or 503 / 429 with
``Retry-After``), never a 500: 415 a body that is not ``application/json``, 413 one over
``MAX_BODY_BYTES``, 400 invalid JSON or a body that is not an object, 422 a field of the
wrong type; then 401/403/429 from the :class:`~serving.access.Gate`; then 503 when the
worker already holds ``max_in_flight`` model requests (no unbounded queue).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from serving.access import Refused, current_app, retry_after_header
from serving.validation import RequestError, check_generate

__all__ = ["MAX_BODY_BYTES", "MODEL_PATHS", "EdgeGuard", "check_body"]

MODEL_PATHS = frozenset({"/classify", "/generate", "/generate_stream"})
MAX_BODY_BYTES = 1_000_000
_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "/classify": {"text": (str,), "texts": (list,), "top_k": (int,)},
    "/generate": {"prompt": (str,), "max_new_tokens": (int,), "temperature": (int, float)},
}
_TYPES["/generate_stream"] = _TYPES["/generate"]
_REQUIRED = {"/generate": ("prompt",), "/generate_stream": ("prompt",)}
_NULLABLE = {"/classify": frozenset({"text", "texts"})}  # null there means "not given"


def _type_name(types: tuple[type, ...]) -> str:
    return {str: "a string", list: "a list of strings", int: "an integer"}.get(types[0], "a number")


def check_body(path: str, content_type: str, body: bytes) -> dict[str, Any]:
    """The parsed JSON object, or RequestError naming what is wrong with it."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestError(415, "send the body as JSON with 'Content-Type: application/json'")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}", field="body") from exc
    if not isinstance(data, dict):
        raise RequestError(400, "the body must be a JSON object", field="body")
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


async def send_error(send: Callable[[Any], Awaitable[None]], exc: RequestError) -> None:
    body: dict[str, Any] = {"error": exc.reason}
    if exc.field:
        body["field"] = exc.field
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if exc.retry_after is not None or exc.status in (429, 503):
        headers.append((b"retry-after", retry_after_header(exc.retry_after).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
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


class EdgeGuard:
    """ASGI middleware; reads the worker's runtime through ``get_runtime`` (set at startup)."""

    def __init__(self, app: Any, get_runtime: Callable[[], Any]) -> None:
        self.app = app
        self.get_runtime = get_runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        runtime = self.get_runtime()
        if scope["type"] != "http" or scope["path"] not in MODEL_PATHS or runtime is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        app = "-"
        try:
            if scope["method"] != "POST":
                raise RequestError(405, f"{path} takes POST")
            app = runtime.gate.admit(headers.get("authorization"))
            body = await _read_body(receive)
            data = check_body(path, headers.get("content-type", ""), body)
            if path == "/generate_stream":
                _check_stream(runtime, data)
            if runtime.in_flight >= runtime.max_in_flight:
                raise Refused(
                    503,
                    f"overloaded: {runtime.in_flight} requests in flight; retry shortly",
                    "overloaded",
                    app,
                    1.0,
                )
        except RequestError as exc:
            if isinstance(exc, Refused):
                runtime.metrics.admission.labels(runtime.deployment, exc.app, exc.outcome).inc()
            await send_error(send, exc)
            return
        runtime.metrics.admission.labels(runtime.deployment, app, "ok").inc()
        runtime.in_flight += 1
        token = current_app.set(app)
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
            current_app.reset(token)


def _check_stream(runtime: Any, data: dict[str, Any]) -> None:
    """The checks /generate does, before a stream starts (a stream cannot change its status)."""
    served, _ = runtime.pick(None)
    if served.task != "causal-lm":
        raise RequestError(404, f"{served.version} is a {served.task} model: use /classify")
    check_generate(
        data["prompt"],
        int(data.get("max_new_tokens") or 32),
        float(data.get("temperature") or 0.0),
        cap=served.max_new_tokens,
        max_chars=served.max_chars,
    )
