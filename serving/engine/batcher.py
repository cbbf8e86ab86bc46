"""Adaptive batching without a deadline: one inference thread takes whatever has queued.

While a forward pass runs, new requests wait in the queue; the next pass takes them all
(up to the first request's ``max_batch_size`` texts: its version's ``serving.batching``),
grouped by the version that must answer them. Idle, a
request runs alone at once, so this is never slower than one pass per request; loaded, the
passes grow. Nothing is shed here: past ``CONVEYOR_SERVE_MAX_IN_FLIGHT`` the edge answers 503.
A pass that fails is run again request by request, so one bad request fails only itself.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = ["Batcher"]

Forward = Callable[[Any, list[str], int], list[dict[str, Any]]]


@dataclass
class _Job:
    model: Any
    key: str
    texts: Sequence[str]
    top_k: int
    future: Future[list[dict[str, Any]]]
    limit: int


class Batcher:
    """Runs ``forward(model, texts, top_k)`` for merged requests on one thread."""

    def __init__(self, forward: Forward, max_batch_size: int = 32) -> None:
        self.forward = forward
        self.max_batch_size = max_batch_size
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="conveyor-batcher", daemon=True)
        self._thread.start()

    async def submit(
        self,
        model: Any,
        key: str,
        texts: Sequence[str],
        top_k: int,
        max_batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Answer ``texts`` in a pass of at most ``max_batch_size`` texts (1: never merged)."""
        future: Future[list[dict[str, Any]]] = Future()
        limit = self.max_batch_size if max_batch_size is None else max_batch_size
        self._queue.put(_Job(model, key, texts, top_k, future, limit))
        return await asyncio.wrap_future(future)

    def _take(self) -> list[_Job]:
        jobs = [self._queue.get()]
        size = len(jobs[0].texts)
        while size < jobs[0].limit:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            groups: dict[str, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                self._answer(group)

    def _answer(self, group: list[_Job]) -> None:
        texts = [text for job in group for text in job.texts]
        top_k = max(job.top_k for job in group)
        try:
            results = self.forward(group[0].model, texts, top_k)
        except Exception as exc:
            if len(group) == 1:
                group[0].future.set_exception(exc)
                return
            # One request may be what broke the pass: each alone, so it fails only itself.
            for job in group:
                self._answer([job])
            return
        start = 0
        for job in group:
            part = results[start : start + len(job.texts)]
            start += len(job.texts)
            job.future.set_result([{**r, "top_k": r["top_k"][: job.top_k]} for r in part])
