"""Decoding for causal-LM versions (provisional: one request at a time with Hugging Face
``generate`` in a thread; the batched engine replaces this module whole, same interface)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DecodeEngine", "SamplingParams", "TokenEvent"]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    text: str
    completion_tokens: int
    prompt_tokens: int
    finish_reason: str | None  # None while running; the last event "stop" | "length"


def _held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many trailing characters could still begin a stop string (not sent yet)."""
    return max((n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)


class DecodeEngine:
    def __init__(
        self, model: Any, tokenizer: Any, *, max_batch: int = 8, context: int, name: str = ""
    ) -> None:
        self.model, self.tokenizer, self.context, self.name = model, tokenizer, context, name
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "running": 0, "decoded_tokens": 0, "cancelled": 0}

    def _run(self, ids: list[int], params: SamplingParams, put: Callable[[Any], object]) -> Any:
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        engine, cancel = self, threading.Event()

        class Tokens(BaseStreamer):
            first = True

            def put(self, value: Any) -> None:
                if self.first:  # the prompt
                    self.first = False
                    return
                new = [int(t) for t in value.reshape(-1).tolist()]
                engine._counts["decoded_tokens"] += len(new)
                put(new)

            def end(self) -> None:
                pass

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    sampling = params.temperature > 0
                    self.model.generate(
                        input_ids=torch.tensor([ids]),
                        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                        max_new_tokens=params.max_tokens,
                        do_sample=sampling,
                        temperature=params.temperature if sampling else None,
                        top_p=params.top_p if sampling else None,
                        top_k=None,
                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                        streamer=Tokens(),
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                    )
                put(None)
            except Exception as exc:
                put(exc)

        threading.Thread(target=work, name=f"decode-{self.name}", daemon=True).start()
        return cancel

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[TokenEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._counts["requests"] += 1
        self._counts["running"] += 1
        cancel = self._run(
            prompt_ids, params, lambda x: loop.call_soon_threadsafe(queue.put_nowait, x)
        )
        ids: list[int] = []
        sent = ""
        finish: str | None = None
        try:
            while finish is None:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    eos = self.tokenizer.eos_token_id
                    ended = bool(ids) and ids[-1] == eos
                    finish = "length" if len(ids) >= params.max_tokens and not ended else "stop"
                else:
                    ids.extend(item)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                cut = [text.index(s) for s in params.stop if s in text]
                if cut:
                    text, finish = text[: min(cut)], "stop"
                elif finish is None:
                    if text.endswith("\ufffd"):
                        continue
                    text = text[: len(text) - _held_back(text, params.stop)]
                delta, sent = text[len(sent) :], text
                yield TokenEvent(delta, len(ids), len(prompt_ids), finish)
        finally:
            if finish is None:
                self._counts["cancelled"] += 1
            self._counts["running"] -= 1
            cancel.set()

    async def complete(
        self, prompt_ids: list[int], params: SamplingParams, adapter: str | None = None
    ) -> tuple[str, TokenEvent]:
        pieces: list[str] = []
        last = TokenEvent("", 0, len(prompt_ids), "stop")
        async for event in self.stream(prompt_ids, params, adapter):
            pieces.append(event.text)
            last = event
        return "".join(pieces), last

    def stats(self) -> dict[str, float | int]:
        return dict(self._counts)

    def close(self) -> None:
        pass
