"""What the decode thread keeps per request and per call, and its counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from serving.engine._text import TextState
from serving.engine.params import SamplingParams, TokenEvent

__all__ = ["Call", "Counts", "Request", "eos_ids"]


@dataclass(eq=False)
class Request:
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[TokenEvent | BaseException]
    text: TextState
    generator: torch.Generator | None
    cancelled: bool = False
    done: bool = False
    generated: int = 0

    def deliver(self, item: TokenEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody listens any more
            self.cancelled = True


@dataclass(eq=False)
class Call:
    fn: Callable[[], Any]
    future: Future[Any]
    unused: str | None  # run only once no request for this adapter runs or waits


@dataclass
class Counts:
    steps: int = 0
    prefills: int = 0  # requests prefilled
    prefill_batches: int = 0  # prefill forward passes that succeeded
    tokens_generated: int = 0
    rows_stepped: int = 0
    finished: int = 0
    cancelled: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)
