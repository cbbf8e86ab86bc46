"""The decode engine of a GGUF version: llama.cpp's server engine behind the same face as
:class:`~serving.engine.decoding.DecodeEngine` (``check``, ``stream``, ``complete``,
``stats``, ``retire``, ``close``).

llama.cpp batches the running requests itself (continuous batching over its parallel
slots; more requests than slots wait in its queue). Each request blocks one thread inside
``xllamacpp`` (which releases the GIL while it waits); every chunk it streams becomes a
:class:`~serving.engine.params.TokenEvent` on the request's asyncio queue. A request whose
client goes away is stopped at its next token (the chunk callback says so), and a failure
in llama.cpp fails that request alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.llamacpp import Chunk, LlamaCppModel
from serving.engine._exit import close_at_exit
from serving.engine.limits import GREEDY_BELOW, check_fits
from serving.engine.params import (
    DecodeError,
    EngineClosed,
    SamplingParams,
    TokenEvent,
    collect,
)

__all__ = ["LlamaCppEngine"]

log = logging.getLogger(__name__)
_CLOSE_WAIT_SECONDS = 30.0


@dataclass
class _Counts:
    started: float = field(default_factory=time.monotonic)
    tokens_generated: int = 0
    finished: int = 0
    cancelled: int = 0
    errors: int = 0


@dataclass(eq=False)  # each call is its own (kept in a set while it runs)
class _Call:
    """One request's thread-side state."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[TokenEvent | BaseException]
    prompt_tokens: int
    stop: threading.Event = field(default_factory=threading.Event)
    tokens: int = 0
    done: bool = False

    def deliver(self, item: TokenEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the request's loop is gone: nobody is waiting any more
            self.stop.set()


class LlamaCppEngine:
    """Requests to one GGUF model in llama.cpp, from asyncio."""

    def __init__(self, model: LlamaCppModel, tokenizer: Any, *, name: str = "") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context: int = model.context
        self.max_batch = model.slots
        self.name = name
        self._lock = threading.Condition()
        self._calls: set[_Call] = set()
        self._closed = False
        self._retiring = False
        self._counts = _Counts()
        close_at_exit(self)

    def adapters(self) -> frozenset[str]:
        return frozenset()

    def check(self, prompt_tokens: int, params: SamplingParams, adapter: str | None = None) -> None:
        """InvalidRequest when the request cannot run here; called before it queues."""
        check_fits(prompt_tokens, params.max_tokens, self.context)
        if adapter is not None:
            raise DecodeError(f"engine {self.name!r} (llama.cpp) holds no adapter {adapter!r}")

    async def stream(
        self, prompt_ids: Sequence[int], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[TokenEvent]:
        """One event per streamed chunk; closing the generator early stops the request."""
        ids = [int(t) for t in prompt_ids]
        self.check(len(ids), params, adapter)
        call = _Call(asyncio.get_running_loop(), asyncio.Queue(), len(ids))
        with self._lock:
            if self._closed or self._retiring:
                raise EngineClosed(f"engine {self.name!r} is closed")
            self._calls.add(call)
        thread = threading.Thread(
            target=self._run, args=(call, ids, params), name=f"llamacpp-{self.name}", daemon=True
        )
        thread.start()
        try:
            while True:
                item = await call.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            call.stop.set()

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, adapter: str | None = None
    ) -> tuple[str, TokenEvent]:
        """The whole output text and the last event (usage and finish reason)."""
        return await collect(self.stream(prompt_ids, params, adapter))

    def _event(self, call: _Call, chunk: Chunk) -> TokenEvent:
        if chunk.finish_reason is None:
            call.tokens += 1
            return TokenEvent(chunk.text, call.tokens, call.prompt_tokens, None)
        tokens = chunk.completion_tokens if chunk.completion_tokens is not None else call.tokens
        prompt = chunk.prompt_tokens if chunk.prompt_tokens is not None else call.prompt_tokens
        finish = chunk.finish_reason if chunk.finish_reason in ("stop", "length") else "stop"
        return TokenEvent(chunk.text, tokens, prompt, finish)

    def _run(self, call: _Call, ids: list[int], params: SamplingParams) -> None:
        def on_chunk(chunk: Chunk) -> bool:
            event = self._event(call, chunk)
            if event.finish_reason is not None:
                call.done = True
                with self._lock:  # counted before the client can see the answer end
                    self._counts.tokens_generated += event.completion_tokens
                    self._counts.finished += 1
            call.deliver(event)
            return call.stop.is_set()

        greedy = params.temperature < GREEDY_BELOW
        try:
            self.model.stream(
                ids,
                params.max_tokens,
                on_chunk,
                temperature=0.0 if greedy else params.temperature,
                top_p=params.top_p,
                seed=params.seed,
                stop=params.stop,
            )
            if not call.done:
                with self._lock:
                    self._counts.cancelled += 1
                call.deliver(EngineClosed(f"engine {self.name!r} stopped the request"))
        except Exception as exc:  # llama.cpp failed this request: it alone fails
            with self._lock:
                self._counts.errors += 1
            log.warning("llama.cpp request failed on %s: %s", self.name, exc)
            failure = DecodeError(f"decoding failed on {self.name}")
            failure.__cause__ = exc
            call.deliver(failure)
        finally:
            self._finished(call)

    def _finished(self, call: _Call) -> None:
        with self._lock:
            self._calls.discard(call)
            last = not self._calls
            self._lock.notify_all()
            close_now = self._retiring and last and not self._closed
        if close_now:
            self._close_model()

    def stats(self) -> dict[str, float | int]:
        c = self._counts
        running = len(self._calls)
        return {
            "running": running,
            "waiting": max(0, running - self.max_batch),
            "steps": 0,
            "prefills": 0,
            "prefill_batches": 0,
            "tokens_generated": c.tokens_generated,
            "finished": c.finished,
            "cancelled": c.cancelled,
            "errors": c.errors,
            "mean_batch": 0.0,
            "batch_occupancy": min(running, self.max_batch) / self.max_batch,
            "uptime_s": time.monotonic() - c.started,
        }

    def retire(self) -> None:
        """Close once the requests already running have finished (a version no longer routed)."""
        with self._lock:
            self._retiring = True
            idle = not self._calls
        if idle:
            self._close_model()

    def close(self) -> None:
        """Stop every running request at its next token, then free the model."""
        with self._lock:
            self._retiring = True
            for call in self._calls:
                call.stop.set()
            deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
            while self._calls and time.monotonic() < deadline:
                self._lock.wait(timeout=0.1)
        self._close_model()

    def _close_model(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.model.close()

    @property
    def closed(self) -> bool:
        return self._closed
