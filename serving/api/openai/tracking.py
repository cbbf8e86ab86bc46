"""One OpenAI request's figures, counted once when it ends: metrics, canary evidence, the
app's tokens, the drift profile and the capture (each answered, failed or abandoned request)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from serving.api.openai.protocol import LlmRequest
from serving.engine.params import TokenEvent
from serving.worker.access import current_app
from serving.worker.capture import Exchange
from serving.worker.token_limits import TokenReservation

if TYPE_CHECKING:
    from serving.worker.loading import Served
    from serving.worker.runtime import Runtime

__all__ = ["Tracker", "capture_refusal", "tracker_for"]


@dataclass
class Tracker:
    """One request's figures, counted once when it ends (answered, failed or abandoned)."""

    runtime: Runtime
    served: Served
    role: str
    endpoint: str
    prompt_text: str = ""
    reservation: TokenReservation | None = None  # the app's tokens, settled when it ends
    request: str | tuple[tuple[str, str], ...] = ""  # what the capture records of the request
    start: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: TokenEvent | None = None
    captured: bool = False  # this request's capture sample was drawn: its text is kept
    pieces: list[str] = field(default_factory=list)
    waiting: bool = False  # counted in the waiting gauge: sent to the engine, no token yet

    def __post_init__(self) -> None:
        self.captured = self.runtime.capture.sampled(self.served.capture)

    def wait(self) -> None:
        """The request goes to the engine: it waits for its first token (the autoscaler's
        queue metric) until :meth:`event` brings one or :meth:`done` ends it."""
        self.waiting = True
        self.runtime.metrics.waiting.labels(self.runtime.deployment).inc()

    def stop_waiting(self) -> None:
        """Out of the waiting gauge (once; later calls do nothing)."""
        if self.waiting:
            self.waiting = False
            self.runtime.metrics.waiting.labels(self.runtime.deployment).dec()

    def event(self, event: TokenEvent) -> None:
        if self.first is None and event.completion_tokens > 0:
            self.first = time.perf_counter()
            self.stop_waiting()
        self.last = event
        if self.captured and event.text:
            self.pieces.append(event.text)

    def exchange(self, failed: bool, cached: bool, ttft_ms: float | None) -> Exchange:
        """What the capture records of this request."""
        last = self.last
        return Exchange(
            self.served.version,
            self.role,
            current_app.get(),
            self.endpoint,
            500 if failed else 200,
            (time.perf_counter() - self.start) * 1000,
            self.request,
            answer="".join(self.pieces),
            ttft_ms=ttft_ms,
            tokens_in=last.prompt_tokens if last is not None else None,
            tokens_out=last.completion_tokens if last is not None else None,
            finish_reason=(last.finish_reason or "cancelled") if last is not None else None,
            cache_hit=cached,
        )

    def done(self, *, failed: bool = False, executed: bool = True) -> None:
        self.stop_waiting()
        runtime, version = self.runtime, self.served.version
        app = current_app.get()
        series = (runtime.deployment, version, self.role)
        metrics = runtime.metrics
        last = self.last
        ttft_ms = (self.first - self.start) * 1000 if self.first is not None else None
        if executed and last is not None:
            reason = last.finish_reason or "cancelled"
            metrics.finish.labels(*series, reason).inc()
            metrics.output_tokens.labels(*series).observe(last.completion_tokens)
            if self.first is not None:
                metrics.first_token.labels(*series).observe(self.first - self.start)
                decoding = time.perf_counter() - self.first
                if last.completion_tokens > 1 and decoding > 0:
                    speed = (last.completion_tokens - 1) / decoding
                    metrics.tokens_per_second.labels(*series).observe(speed)
        runtime.observe(
            version,
            self.role,
            self.endpoint,
            self.start,
            failed=failed,
            app=app,
            executed=executed,
            judged_ms=ttft_ms,
        )
        if self.captured:
            exchange = self.exchange(failed, not executed, ttft_ms)
            runtime.capture.submit(self.served.capture, [exchange])
        used = last.prompt_tokens + last.completion_tokens if last is not None else 0
        runtime.gate.settle_tokens(self.reservation, used)
        if not failed:  # the drift monitor's view of the prompts (cached answers too: traffic)
            no_answer = {"label": None, "score": None}  # a language model has no label
            tokenizer = self.served.loaded.tokenizer
            runtime.profiler.submit(version, tokenizer, [self.prompt_text], [no_answer])


def tracker_for(
    runtime: Runtime,
    served: Served,
    role: str,
    llm: LlmRequest,
    reservation: TokenReservation | None,
) -> Tracker:
    request = llm.messages if llm.kind == "chat" else llm.prompt
    return Tracker(runtime, served, role, llm.kind, llm.prompt_text, reservation, request)


def capture_refusal(
    runtime: Runtime, served: Served, role: str, llm: LlmRequest, status: int, start: float
) -> None:
    """A request refused after its version was chosen (too long for the context, a limit)."""
    tracker = tracker_for(runtime, served, role, llm, None)  # draws the sample
    if tracker.captured:
        tracker.start = start
        exchange = dataclasses.replace(tracker.exchange(False, False, None), status=status)
        runtime.capture.submit(served.capture, [exchange])
