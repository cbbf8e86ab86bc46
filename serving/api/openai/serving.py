"""The OpenAI-compatible handler: from a parsed request to an answer, counted.

The edge (:mod:`serving.api.edge`) has already admitted the caller (key, request and token
limits, the in-flight bound) and read the body; here the request is parsed
(:mod:`serving.api.openai.protocol`), routed like ``/classify`` (the canary pick, or the
version the ``model`` field pins), held to the version's limits (:func:`check_budget`: its
``serving.max_new_tokens`` and the context its engine computed at load), decoded by the
version's engine, and counted: per-version metrics, canary evidence (only when the model ran;
its time to first token is what the judge reads) and the app's tokens. A LoRA version's
request leases its adapter for as long as it decodes (:class:`Lease`): loaded again first if
it was evicted (up to the pool's wait, else 503 with Retry-After), never evicted under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from jinja2 import TemplateError
from starlette.background import BackgroundTask

from conveyor.model_folder import ArtifactError
from serving.api.edge import BODY_STATE, parse_json
from serving.api.openai.protocol import ApiError, Kind, LlmRequest, parse_request
from serving.api.openai.responses import (
    DONE,
    chunk,
    completion_body,
    error_body,
    error_response,
    sse,
)
from serving.api.openai.tracking import capture_refusal, tracker_for
from serving.api.validation import status_of
from serving.canary.routing import PINNED_ROLE
from serving.engine.adapters import AdapterPool
from serving.engine.params import SamplingParams, TokenEvent
from serving.refusal import Refusal, Unavailable
from serving.worker.access import Refused, current_app
from serving.worker.token_limits import TokenReservation

if TYPE_CHECKING:
    from serving.worker.loading import Served
    from serving.worker.runtime import Runtime

__all__ = ["Lease", "answer", "cache_key", "check_budget", "lease", "prompt_ids"]

log = logging.getLogger(__name__)
CACHE_TOP_K = 0  # the prediction cache's second key part: 0 marks a language-model answer
MAX_CHARS_PER_TOKEN = 32  # far above what a token spells (BPE pieces are a few characters)


def _bad(message: str, param: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


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


def check_prompt_chars(request: LlmRequest, context: int) -> None:
    """Refuse, before tokenizing it, a prompt too long for any tokenization to fit the
    model's context (no token of ours spells more than ``MAX_CHARS_PER_TOKEN`` characters)."""
    field = "messages" if request.kind == "chat" else "prompt"
    chars = sum(len(text) for _role, text in request.messages) + len(request.prompt)
    limit = context * MAX_CHARS_PER_TOKEN
    if chars > limit:
        raise ApiError(
            400,
            f"the prompt has {chars} characters; this model's context of {context} tokens "
            f"takes at most {limit}",
            param=field,
            code="context_length_exceeded",
        )


def prompt_ids(tokenizer: Any, request: LlmRequest) -> list[int]:
    """The prompt's tokens: messages through the chat template (ready for the assistant's
    turn), a completion prompt as it is."""
    if request.kind == "chat":
        messages = [{"role": role, "content": text} for role, text in request.messages]
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as exc:  # a template that refuses this conversation (roles, order)
            said = str(exc) if isinstance(exc, TemplateError) else type(exc).__name__
            raise ApiError(
                400, f"the chat template refused the messages: {said}", param="messages"
            ) from exc
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # newer transformers
            ids = ids["input_ids"]
        return [int(t) for t in ids]
    return [int(t) for t in tokenizer(request.prompt)["input_ids"]]


@dataclass
class Lease:
    """A request's hold on its version's adapter (``name``: in the model now); none for a
    version without one. Released once, whichever way the request ends."""

    pool: AdapterPool | None = None
    slot: str | None = None
    name: str | None = None

    def release(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None and self.slot is not None:
            pool.unlease(self.slot)


async def lease(runtime: Runtime, served: Served) -> Lease:
    """Hold ``served``'s adapter for one request, loading it if it was evicted; Unavailable
    (503, Retry-After) when it cannot be loaded within the pool's wait."""
    if served.adapter is None:
        return Lease()
    pool = runtime.controller.adapters
    try:
        name = await pool.acquire(served.adapter)
    except ArtifactError as exc:  # released meanwhile, or it did not load again
        raise Unavailable(f"{served.version} cannot answer now: {exc}") from exc
    return Lease(pool, served.adapter, name)


@asynccontextmanager
async def _decoding(
    served: Served, ids: list[int], params: SamplingParams, held: Lease
) -> AsyncIterator[AsyncIterator[TokenEvent]]:
    """The engine's token stream, closed on the way out whatever happens (a client gone, an
    error): closing it ends that request's decoding."""
    assert served.engine is not None
    stream = served.engine.stream(ids, params, held.name)
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _resolve(runtime: Runtime, model: str, canary_key: str | None) -> tuple[Served, str]:
    """The deployment name takes the canary pick. A version this worker holds pins it, for a
    key that may pin (its answers are never canary evidence); any other key is told to call
    the deployment."""
    if model == runtime.deployment:
        return runtime.pick(canary_key)
    app = current_app.get()
    pinnable = runtime.pinnable(app)
    if model in pinnable:
        return pinnable[model], PINNED_ROLE
    routing = runtime.controller.routing
    if model in routing.roles():
        raise ApiError(
            403,
            f"app '{app}' may not pin a version: call the deployment '{runtime.deployment}' "
            "(pinning needs a key made with --may-pin-versions)",
            param="model",
            code="model_not_allowed",
        )
    raise ApiError(
        404,
        f"The model '{model}' does not exist here: this server serves '{runtime.deployment}'",
        param="model",
        code="model_not_found",
    )


def _cached(runtime: Runtime, served: Served, key: str) -> dict[str, Any] | None:
    found = runtime.cache.get_many(served.version, CACHE_TOP_K, [key])[0]
    for outcome, hit in (("hit", True), ("miss", False)):  # both series exist from the first
        counted = 1 if (found is not None) == hit else 0
        runtime.metrics.cache.labels(runtime.deployment, served.version, outcome).inc(counted)
    return found


async def _complete(
    request: Request,
    runtime: Runtime,
    served: Served,
    role: str,
    llm: LlmRequest,
    ids: list[int],
    budget: int,
    reservation: TokenReservation | None,
    held: Lease,
) -> Response:
    rid = ("chatcmpl-" if llm.kind == "chat" else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    tracker = tracker_for(runtime, served, role, llm, reservation)
    key = cache_key(llm, budget) if llm.greedy else None
    found = _cached(runtime, served, key) if key else None
    headers = {"X-Model-Version": served.version, "X-Model-Role": role}
    if found is not None:
        last = TokenEvent(
            found["text"],
            found["completion_tokens"],
            found["prompt_tokens"],
            found["finish_reason"],
        )
        tracker.event(last)
        tracker.done(executed=False)  # a cached answer is no evidence of the model
        body = completion_body(llm.kind, rid, created, served.version, found["text"], last)
        return JSONResponse(body, headers=headers)
    assert served.engine is not None
    pieces: list[str] = []
    tracker.wait()
    try:
        async with _decoding(served, ids, llm.params(budget), held) as run:
            async for event in run:
                tracker.event(event)
                pieces.append(event.text)
                if await request.is_disconnected():  # as a stream: the engine stops it
                    break
    except Exception as exc:
        tracker.done(failed=True)
        log.error("%s on %s failed: %s", llm.kind, served.version, exc)
        failure = ApiError(500, f"the model failed: {type(exc).__name__}")
        return error_response(failure, served.version)
    finally:  # cancelled (the first-byte timeout): the waiting gauge still settles
        tracker.stop_waiting()
    tracker.done()
    last = tracker.last or TokenEvent("", 0, len(ids), "stop")
    text = "".join(pieces)
    if key and last.finish_reason is not None:  # a whole answer, not one cut short
        answer: dict[str, Any] = {"text": text, "finish_reason": last.finish_reason}
        answer |= {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens}
        runtime.cache.put_many(served.version, CACHE_TOP_K, [key], [answer])
    body = completion_body(llm.kind, rid, created, served.version, text, last)
    return JSONResponse(body, headers=headers)


async def _events(
    request: Request,
    runtime: Runtime,
    served: Served,
    role: str,
    llm: LlmRequest,
    ids: list[int],
    budget: int,
    reservation: TokenReservation | None,
    held: Lease,
) -> AsyncIterator[bytes]:
    """The server-sent events of one streamed answer; a client that goes away ends the
    decoding at the next token (the engine's stream is closed)."""
    rid = ("chatcmpl-" if llm.kind == "chat" else "cmpl-") + uuid.uuid4().hex
    head = (llm.kind, rid, int(time.time()), served.version)
    usage = llm.include_usage
    tracker = tracker_for(runtime, served, role, llm, reservation)
    failed = False
    assert served.engine is not None
    tracker.wait()
    try:
        if llm.kind == "chat":
            yield sse(chunk(*head, text="", role=True, with_usage=usage))
        async with _decoding(served, ids, llm.params(budget), held) as run:
            async for event in run:
                tracker.event(event)
                if await request.is_disconnected():
                    return
                if event.text:
                    yield sse(chunk(*head, text=event.text, with_usage=usage))
                if event.finish_reason is not None:
                    end = chunk(*head, finish_reason=event.finish_reason, with_usage=usage)
                    yield sse(end)
        if usage and tracker.last is not None:
            counts = (tracker.last.prompt_tokens, tracker.last.completion_tokens)
            yield sse(chunk(*head, counts=counts))
        yield DONE
    except Exception as exc:  # the status is sent already: the error is the last event
        failed = True
        log.error("streamed %s on %s failed: %s", llm.kind, served.version, exc)
        yield sse(error_body(ApiError(500, f"the model failed: {type(exc).__name__}")))
    finally:
        tracker.done(failed=failed)
        held.release()


async def answer(request: Request, runtime: Runtime | None, kind: Kind) -> Response:
    if runtime is None:
        return error_response(ApiError(503, "the worker is starting", retry_after=1.0))
    version: str | None = None
    picked: tuple[Served, str, LlmRequest] | None = None
    held = Lease()
    start = time.perf_counter()
    try:
        body = getattr(request.state, BODY_STATE, None)  # parsed once, by the edge
        if body is None:
            body = parse_json("application/json", await request.body())
        llm = parse_request(kind, body)
        served, role = _resolve(runtime, llm.model, request.headers.get("x-canary-key"))
        version = served.version
        picked = (served, role, llm)
        if served.engine is None:
            raise ApiError(
                404,
                f"{served.version} is a {served.task} model: it has no completions (use /classify)",
                param="model",
                code="model_not_found",
            )
        assert served.context is not None  # a version with an engine has its context
        check_prompt_chars(llm, served.context)  # before any tokenizing: a cheap bound
        ids = await runtime.tokenize(prompt_ids, served.loaded.tokenizer, llm)
        budget = check_budget(llm, len(ids), cap=served.max_new_tokens, context=served.context)
        held = await lease(runtime, served)
        app = current_app.get()
        reservation = await asyncio.to_thread(runtime.gate.reserve_tokens, app, len(ids) + budget)
    except ValueError:
        held.release()
        runtime.metrics.refused(runtime.deployment, request.url.path, 400, current_app.get())
        return error_response(ApiError(400, "the body is not valid JSON", param="body"))
    except Refusal as exc:  # the request's fault: never counted against the version
        held.release()
        if isinstance(exc, Refused):  # a limit: counted with the edge's refusals
            runtime.metrics.admission.labels(runtime.deployment, exc.app, exc.outcome).inc()
        if picked is not None:
            capture_refusal(runtime, *picked, status_of(exc), start)
        app = current_app.get()
        runtime.metrics.refused(runtime.deployment, request.url.path, status_of(exc), app)
        return error_response(exc, version)
    except BaseException:
        held.release()
        raise
    if not llm.stream:
        try:
            args = (ids, budget, reservation, held)
            return await _complete(request, runtime, served, role, llm, *args)
        finally:
            held.release()
    headers = {"X-Model-Version": served.version, "X-Model-Role": role}
    headers["Cache-Control"] = "no-cache"
    events = _events(request, runtime, served, role, llm, ids, budget, reservation, held)
    after = BackgroundTask(held.release)  # the stream releases it; this, if it never ran
    sent = "text/event-stream"
    return StreamingResponse(events, media_type=sent, headers=headers, background=after)
