"""Continuous batching over one causal LM: the decode engine of a generative version.

One thread per engine runs the model; the asyncio side only queues requests and reads
events. Each round, at a token boundary, the thread runs the calls it was handed (an adapter
loaded or deleted), drops requests whose client went away, prefills the waiting requests the
batch has room for (together in one forward pass, left-padded to the longest prompt and
bounded by ``max_prefill_tokens``, then joined to the left-padded KV cache) and runs one
decode step for every running request. Should a batched prefill fail, each of its requests
is prefilled alone, so a request the model cannot run fails alone. A request leaves as soon
as it ends (eos, a stop string, ``max_tokens``), so the next one joins in its place. Every
token is an event, handed to the request's asyncio queue with ``loop.call_soon_threadsafe``.

With a peft model holding several adapters, rows of different versions share each forward
pass through peft's mixed-batch ``adapter_names`` (``"__base__"`` for the bare base).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from conveyor.model_folder import ArtifactError
from serving.engine._exit import close_at_exit
from serving.engine._kv_batch import KVBatch, prefill_inputs
from serving.engine._request import Call, Counts, Request, eos_ids
from serving.engine._sampling import next_tokens
from serving.engine._text import TextState
from serving.engine.limits import GREEDY_BELOW, check_fits, context_length
from serving.engine.params import (
    DecodeError,
    EngineClosed,
    SamplingParams,
    TokenEvent,
    collect,
)

__all__ = ["BASE_ADAPTER", "DecodeEngine"]

log = logging.getLogger(__name__)
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


class DecodeEngine:
    """Continuous batching over one causal LM (optionally a peft model with several adapters)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 8,
        context: int | None = None,
        name: str = "",
        max_prefill_tokens: int = 2048,
    ) -> None:
        """``context``: the tokens a request may hold, prompt and completion; left out, as
        the model says (:func:`~serving.engine.limits.context_length`, computed here once,
        as the version loads; ArtifactError when the model does not say).
        ``max_prefill_tokens`` bounds one prefill's padded size (rows x longest prompt);
        a request beyond it waits for the next round (one alone always goes)."""
        context = context if context is not None else context_length(model, tokenizer)
        if context is None:
            raise ArtifactError(
                "cannot tell how many tokens this model holds: its config has no "
                "max_position_embeddings or n_positions and its tokenizer no model_max_length"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_prefill_tokens = max_prefill_tokens
        self.context: int = context
        self.name = name
        self._eos = eos_ids(model, tokenizer)
        self._device = next(model.parameters()).device
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._calls: list[Call] = []
        self._batch = KVBatch()
        self._closed = False
        self._retiring = False
        self._counts = Counts()
        self._thread = threading.Thread(
            target=self._run, name=f"decode-{name or id(self)}", daemon=True
        )
        self._thread.start()
        close_at_exit(self)

    # -- the asyncio side --------------------------------------------------------------------

    def adapters(self) -> frozenset[str]:
        """The adapters this engine's model holds (empty for a plain model)."""
        return frozenset(getattr(self.model, "peft_config", {}) or ())

    def check(self, prompt_tokens: int, params: SamplingParams, adapter: str | None = None) -> None:
        """InvalidRequest when the request cannot run here; called before it queues."""
        check_fits(prompt_tokens, params.max_tokens, self.context)
        if adapter is not None and adapter not in self.adapters():
            raise DecodeError(f"engine {self.name!r} holds no adapter {adapter!r}")

    def _submit(
        self, prompt_ids: list[int], params: SamplingParams, adapter: str | None
    ) -> Request:
        self.check(len(prompt_ids), params, adapter)
        generator = None
        if params.temperature >= GREEDY_BELOW:
            seed = params.seed if params.seed is not None else random.randrange(2**63)
            generator = torch.Generator().manual_seed(seed)
        request = Request(
            prompt_ids, params, adapter, asyncio.get_running_loop(), asyncio.Queue(),
            TextState(self.tokenizer, params.stop), generator,
        )  # fmt: skip
        with self._cond:
            if self._closed:
                raise EngineClosed(f"engine {self.name!r} is closed")
            self._waiting.append(request)
            self._cond.notify()
        return request

    async def stream(
        self, prompt_ids: Sequence[int], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[TokenEvent]:
        """One event per output token; closing the generator early drops the request from
        the batch at the next token boundary."""
        request = self._submit(list(prompt_ids), params, adapter)
        try:
            while True:
                item = await request.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            if not request.done:
                request.cancelled = True
                with self._cond:
                    self._cond.notify()

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, adapter: str | None = None
    ) -> tuple[str, TokenEvent]:
        """The whole output text and the last event (usage and finish reason)."""
        return await collect(self.stream(prompt_ids, params, adapter))

    def stats(self) -> dict[str, float | int]:
        c = self._counts
        steps = max(c.steps, 1)
        return {
            "running": len(self._running),
            "waiting": len(self._waiting),
            "steps": c.steps,
            "prefills": c.prefills,
            "prefill_batches": c.prefill_batches,
            "tokens_generated": c.tokens_generated,
            "finished": c.finished,
            "cancelled": c.cancelled,
            "errors": c.errors,
            "mean_batch": c.rows_stepped / steps,
            "batch_occupancy": c.rows_stepped / steps / self.max_batch,
            "uptime_s": time.monotonic() - c.started,
        }

    # -- calls at a token boundary, closing ------------------------------------------------------

    def call_between_steps(
        self, fn: Callable[[], Any], *, unused: str | None = None
    ) -> Future[Any]:
        """Run ``fn`` on the decode thread between two steps (with ``unused``: once no request
        for that adapter runs or waits), so it never changes the model under a forward pass."""
        call = Call(fn, Future(), unused)
        with self._cond:
            if self._closed:
                call.future.set_exception(EngineClosed(f"engine {self.name!r} is closed"))
            else:
                self._calls.append(call)
                self._cond.notify()
        return call.future

    def retire(self) -> None:
        """Close once the requests already queued have finished (a version no longer routed)."""
        with self._cond:
            self._retiring = True
            self._cond.notify()

    def close(self) -> None:
        """Stop the decode thread; requests not finished end with EngineClosed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the decode thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._round():
                pass
        except BaseException:  # a bug here must not leave streams waiting forever
            log.exception("decode engine %s stopped", self.name)
            raise
        finally:
            with self._cond:
                self._closed = True
                pending, self._waiting = [*self._running, *self._waiting], deque()
                calls, self._calls = self._calls, []
            self._running = []
            for request in pending:
                request.done = True
                request.deliver(EngineClosed(f"engine {self.name!r} closed"))
            for call in calls:
                call.future.set_exception(EngineClosed(f"engine {self.name!r} closed"))

    def _round(self) -> bool:
        with self._cond:
            while not (self._closed or self._waiting or self._running or self._calls):
                if self._retiring:
                    return False
                self._cond.wait()
            if self._closed:
                return False
            calls = [c for c in self._calls if c.unused is None or not self._uses(c.unused)]
            self._calls = [c for c in self._calls if c not in calls]
            self._waiting = deque(r for r in self._waiting if not r.cancelled)
            admitted = self._admit(self.max_batch - len(self._running))
        for call in calls:
            self._run_call(call)
        self._drop_cancelled()
        if admitted:
            self._prefill(admitted)
        if self._running:
            self._step()
        return True

    def _admit(self, room: int) -> list[Request]:
        """The waiting requests to prefill together, in order: up to ``room`` of them while
        rows x longest prompt stays within ``max_prefill_tokens`` (the first always goes)."""
        admitted: list[Request] = []
        longest = 0
        while self._waiting and len(admitted) < room:
            width = max(longest, len(self._waiting[0].prompt_ids))
            if admitted and width * (len(admitted) + 1) > self.max_prefill_tokens:
                break
            admitted.append(self._waiting.popleft())
            longest = width
        return admitted

    def _uses(self, adapter: str) -> bool:
        requests = itertools.chain(self._running, self._waiting)
        return any(r.adapter == adapter and not r.cancelled for r in requests)

    @staticmethod
    def _run_call(call: Call) -> None:
        try:
            call.future.set_result(call.fn())
        except Exception as exc:  # the caller sees it through its future
            call.future.set_exception(exc)

    def _drop_cancelled(self) -> None:
        keep = [i for i, r in enumerate(self._running) if not r.cancelled]
        if len(keep) != len(self._running):
            self._counts.cancelled += len(self._running) - len(keep)
            self._batch.keep(keep)
            self._running = [self._running[i] for i in keep]

    def _adapter_kwargs(self, requests: Sequence[Request]) -> dict[str, Any]:
        if not hasattr(self.model, "peft_config"):
            return {}
        return {"adapter_names": [r.adapter or BASE_ADAPTER for r in requests]}

    def _sample(self, logits: torch.Tensor, requests: Sequence[Request]) -> list[int | None]:
        """One token per request; None for a request whose sampling failed, which fails
        alone (the others in the batch go on)."""
        tokens, failed = next_tokens(
            logits,
            [r.params.temperature for r in requests],
            [r.params.top_p for r in requests],
            [r.generator for r in requests],
        )
        for index, exc in failed.items():
            self._fail([requests[index]], exc)
        return [None if i in failed else token for i, token in enumerate(tokens)]

    @torch.inference_mode()
    def _prefill(self, requests: list[Request]) -> None:
        """Prefill ``requests`` in one forward pass, hand out their first tokens and join
        those that go on to the batch; if the pass fails, prefill each alone instead."""
        try:
            inputs = prefill_inputs([r.prompt_ids for r in requests], self._device)
            out = self.model(**inputs, logits_to_keep=1, **self._adapter_kwargs(requests))
            tokens = self._sample(out.logits[:, -1], requests)
        except Exception as exc:
            if len(requests) == 1:  # this request fails; the batch goes on
                self._fail(requests, exc)
                return
            log.warning(
                "decode engine %s: a prefill of %d requests failed (%s: %s); each goes alone",
                self.name, len(requests), type(exc).__name__, exc,
            )  # fmt: skip
            for request in requests:
                self._prefill([request])
            return
        self._counts.prefills += len(requests)
        self._counts.prefill_batches += 1
        going = [
            i
            for i, (r, t) in enumerate(zip(requests, tokens, strict=True))
            if t is not None and self._emit(r, t)
        ]
        if not going:
            return
        first = len(self._batch)
        placed = [0 if t is None else t for t in tokens]
        self._batch.join(out.past_key_values, inputs["attention_mask"], placed)
        self._batch.keep([*range(first), *(first + i for i in going)])
        self._running.extend(requests[i] for i in going)

    @torch.inference_mode()
    def _step(self) -> None:
        rows = self._running
        try:
            out = self.model(
                **self._batch.step_inputs(), logits_to_keep=1, **self._adapter_kwargs(rows)
            )
            tokens = self._sample(out.logits[:, -1], rows)
        except Exception as exc:  # the requests of this batch fail; the thread goes on
            self._fail(rows, exc)
            self._running, self._batch = [], KVBatch()
            return
        self._counts.steps += 1
        self._counts.rows_stepped += len(rows)
        keep = [
            i
            for i, (r, t) in enumerate(zip(rows, tokens, strict=True))
            if t is not None and self._emit(r, t)
        ]
        placed = [0 if t is None else t for t in tokens]  # a failed row is dropped below
        self._batch.set_next(torch.tensor(placed, dtype=torch.long))
        self._batch.keep(keep)
        self._running = [rows[i] for i in keep]

    def _emit(self, request: Request, token: int) -> bool:
        """Hand out the event for ``token``; whether the request goes on."""
        request.generated += 1
        self._counts.tokens_generated += 1
        finish = None
        if token in self._eos:
            text, finish = request.text.flush(), "stop"
        else:
            text, stopped = request.text.add(token)
            if stopped:
                finish = "stop"
            elif request.generated >= request.params.max_tokens:
                text, finish = text + request.text.flush(), "length"
        event = TokenEvent(text, request.generated, len(request.prompt_ids), finish, (token,))
        if finish is not None:
            request.done = True
            self._counts.finished += 1
        request.deliver(event)
        return finish is None

    def _fail(self, requests: Sequence[Request], exc: Exception) -> None:
        log.error("decode engine %s: %d requests failed", self.name, len(requests), exc_info=exc)
        self._counts.errors += len(requests)
        for request in requests:
            request.done = True
            error = DecodeError(f"decoding failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            request.deliver(error)
