"""The OpenAI-compatible request and response shapes, as pure functions of plain values.

:func:`parse_request` turns a ``/v1/chat/completions`` or ``/v1/completions`` body into a
:class:`LlmRequest`, or raises :class:`ApiError` naming the field (OpenAI's ``param``);
:func:`check_budget` applies the version's limits once the prompt is tokenized; the builders
make the response objects, the stream chunks and the ``{"error": {...}}`` refusals.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from serving.api.validation import RequestError, status_of
from serving.engine.params import SamplingParams, TokenEvent
from serving.refusal import Refusal

__all__ = [
    "DONE",
    "ApiError",
    "Kind",
    "LlmRequest",
    "cache_key",
    "check_budget",
    "chunk",
    "completion_body",
    "error_body",
    "models_body",
    "parse_request",
    "sse",
    "usage",
]

Kind = Literal["chat", "completion"]
DONE = b"data: [DONE]\n\n"
ROLES = frozenset({"system", "developer", "user", "assistant"})
MAX_STOP = 4
_COMMON = {"model", "max_tokens", "temperature", "top_p", "stop", "seed", "stream"}
_COMMON |= {"stream_options", "n", "user", "presence_penalty", "frequency_penalty"}
_FIELDS: dict[str, frozenset[str]] = {
    "chat": frozenset(_COMMON | {"messages", "max_completion_tokens", "logprobs"}),
    "completion": frozenset(_COMMON | {"prompt", "logprobs", "echo"}),
}
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


class ApiError(RequestError):
    """A refusal with OpenAI's ``code`` (``param`` is RequestError's ``field``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, field=param, retry_after=retry_after)
        self.code = code


def error_body(exc: Refusal) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` for any refusal of ours."""
    code = getattr(exc, "code", None) or _CODES.get(getattr(exc, "outcome", ""), None)
    kind = _TYPES.get(status_of(exc), "server_error")
    return {"error": {"message": exc.reason, "type": kind, "param": exc.field, "code": code}}


@dataclass(frozen=True)
class LlmRequest:
    """One validated request; ``max_tokens`` None means "as many as the limits allow"."""

    kind: Kind
    model: str
    messages: tuple[tuple[str, str], ...] = ()
    prompt: str = ""
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def prompt_text(self) -> str:
        """What the client asked, as the drift monitor profiles it (the training data's
        prompts are profiled the same way: the turns' texts, one per line)."""
        if self.kind == "chat":
            return "\n".join(text for _role, text in self.messages)
        return self.prompt

    def params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens, self.temperature, self.top_p, self.seed, self.stop)


def _bad(message: str, param: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _number(data: dict[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"'{name}' must be a number", name)
    if not low <= value <= high:
        raise _bad(f"'{name}' must be between {low:g} and {high:g}, not {value}", name)
    return float(value)


def _integer(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad(f"'{name}' must be an integer", name)
    return value


def _content(value: Any, at: str) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in value
    ):
        return "".join(p["text"] for p in value)
    raise _bad(f"'{at}' must be a string or a list of text parts", at)


def _messages(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise _bad("'messages' must be a non-empty list of {role, content} objects", "messages")
    found = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad(f"'messages[{i}]' must be an object with 'role' and 'content'", "messages")
        role = message["role"]
        if role not in ROLES:
            allowed = ", ".join(sorted(ROLES))
            raise _bad(f"'messages[{i}].role' is '{role}': one of {allowed}", "messages")
        text = _content(message.get("content"), f"messages[{i}].content")
        found.append(("system" if role == "developer" else role, text))
    return tuple(found)


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise _bad("'prompt' must be a non-empty string (or a list of one string)", "prompt")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise _bad("'stop' must be a string or a list of non-empty strings", "stop")
    if len(items) > MAX_STOP:
        raise _bad(f"'stop' has {len(items)} sequences; at most {MAX_STOP}", "stop")
    return tuple(items)


def _unsupported(data: dict[str, Any]) -> None:
    n = _integer(data, "n")
    if n is not None and n != 1:
        raise _bad(f"n={n}: this server returns one choice per request; send n=1 or leave it", "n")
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(data, name, -2, 2, 0.0) != 0:
            raise _bad(f"'{name}' is not supported here; leave it out or send 0", name)
    for name in ("logprobs", "echo"):
        if data.get(name) not in (None, False, 0):
            raise _bad(f"'{name}' is not supported here; leave it out", name)
    if data.get("user") is not None and not isinstance(data["user"], str):
        raise _bad("'user' must be a string", "user")


def parse_request(kind: Kind, data: Any) -> LlmRequest:
    """A validated request, or ApiError (400) naming the field at fault."""
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object", "body")
    for name in data:
        if name not in _FIELDS[kind]:
            raise _bad(f"Unrecognized request argument supplied: {name}", name)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required: the deployment name (GET /v1/models)", "model")
    _unsupported(data)
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream")
    options = data.get("stream_options")
    if options is not None:
        if not stream:
            raise _bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise _bad("'stream_options' takes only 'include_usage'", "stream_options")
    name = (
        "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    )
    max_tokens = _integer(data, name)
    if max_tokens is not None and max_tokens < 1:
        raise _bad(f"'{name}' must be at least 1, not {max_tokens}", name)
    return LlmRequest(
        kind=kind,
        model=model,
        messages=_messages(data.get("messages")) if kind == "chat" else (),
        prompt=_prompt(data.get("prompt")) if kind == "completion" else "",
        max_tokens=max_tokens,
        temperature=_number(data, "temperature", 0, 2, 1.0),
        top_p=_number(data, "top_p", 1e-9, 1, 1.0),
        seed=_integer(data, "seed"),
        stop=_stop(data.get("stop")),
        stream=bool(stream),
        include_usage=bool((options or {}).get("include_usage")),
    )


def check_budget(request: LlmRequest, prompt_tokens: int, *, cap: int, context: int) -> int:
    """The completion tokens this request may produce, or ApiError (400) naming the numbers.

    ``cap`` is the version's ``serving.max_new_tokens``; ``context`` the model's positions."""
    where = "messages" if request.kind == "chat" else "prompt"
    asked = request.max_tokens
    if asked is not None and asked > cap:
        raise _bad(
            f"max_tokens is {asked}, over this deployment's limit of {cap} "
            "(serving.max_new_tokens)",
            "max_tokens",
        )
    wanted = asked if asked is not None else min(cap, max(1, context - prompt_tokens))
    if prompt_tokens + wanted > context:
        raise _bad(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + wanted} tokens ({prompt_tokens} in the {where}, {wanted} for the "
            "completion). Please reduce the length of the messages or completion.",
            where,
            "context_length_exceeded",
        )
    return wanted


def cache_key(request: LlmRequest, max_tokens: int) -> str:
    """What identifies a greedy answer (the version is added by the cache): the whole request,
    normalized, minus what cannot change the text (model name, streaming, user)."""
    fields = {
        "kind": request.kind,
        "messages": request.messages,
        "prompt": request.prompt,
        "max_tokens": max_tokens,
        "stop": request.stop,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "llm:" + hashlib.sha256(canonical.encode()).hexdigest()


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
    """``GET /v1/models``: the deployment (what ``model`` usually names), then each version
    this worker holds (a version id pins that version)."""
    entry = {"object": "model", "created": created, "owned_by": "conveyor"}
    data = [{"id": deployment, **entry}] + [{"id": v, **entry} for v in versions]
    return {"object": "list", "data": data}
