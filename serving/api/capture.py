"""What ``/classify`` hands the worker's capture: one row per text, sampled per request.

Thin glue on the request path: the sample is drawn once, the raw values are handed over,
and :class:`serving.worker.capture.CaptureRecorder` does the rest on its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from serving.worker.access import current_app
from serving.worker.capture import Exchange

if TYPE_CHECKING:
    from serving.worker.loading import Served
    from serving.worker.runtime import Runtime

__all__ = ["Recording"]

ENDPOINT = "classify"


class Recording:
    """One ``/classify`` request's capture: nothing at all unless its sample was drawn."""

    def __init__(self, runtime: Runtime, served: Served, role: str, start: float) -> None:
        self.runtime = runtime
        self.served = served
        self.role = role
        self.start = start
        self.on = runtime.capture.sampled(served.capture)

    def _submit(self, exchanges: list[Exchange]) -> None:
        self.runtime.capture.submit(self.served.capture, exchanges)

    def _exchange(self, status: int, text: str, **answer: Any) -> Exchange:
        latency = (time.perf_counter() - self.start) * 1000
        version, app = self.served.version, current_app.get()
        return Exchange(version, self.role, app, ENDPOINT, status, latency, text, **answer)

    def answered(
        self, items: Sequence[str], results: Sequence[dict[str, Any]], hits: Sequence[bool]
    ) -> None:
        if not self.on:
            return
        done = self._exchange(200, "")
        self._submit(
            [
                replace(
                    done, request=text, answer=str(got["label"]), score=got["score"], cache_hit=hit
                )
                for text, got, hit in zip(items, results, hits, strict=True)
            ]
        )

    def failed(self, items: Sequence[str]) -> None:
        if self.on:
            self._submit([self._exchange(500, text) for text in items])

    def refused(self, status: int, texts: Sequence[object]) -> None:
        """A request refused before the model (too many texts, too long): one row, its
        first text (what it was is in ``status`` and the answer is empty)."""
        if self.on:
            first = texts[0] if texts else ""
            self._submit([self._exchange(status, first if isinstance(first, str) else "")])
