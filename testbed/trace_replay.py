"""Replay an arrival trace against a live server's ``/v1/completions``, counting every answer.

Open loop: request *i* is sent at its (scaled) arrival time whether or not earlier ones have
answered, each on its own thread, streamed. Each prompt is about ``prompt_tokens`` common
English words (one token each in SmolLM2's vocabulary, give or take), drawn from a generator
seeded by the request's index, so no two prompts are alike and no cache answers them;
``max_tokens`` is the trace's output size. Every request ends in exactly one outcome:
``ok`` (the stream ended with ``data: [DONE]``), ``error-event`` (the stream carried an error),
an HTTP status other than 200 (``"503"``...), or ``no-answer`` (the connection failed or was
cut). Time to first token is when the first chunk with text arrived (for an answer without
text, its end).
"""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed.azure_trace import Arrival

__all__ = ["Sent", "TraceTarget", "outcomes", "prompt_of", "replay_live"]

WORDS = (
    "the food river city pub coffee shop near family friendly price range high low cheap "
    "rating customer five stars English Italian French Indian Chinese fast restaurant "
    "centre area riverside good place serves wine beer dinner lunch garden table music"
).split()


@dataclass(frozen=True)
class TraceTarget:
    host: str
    port: int
    model: str  # the deployment
    api_key: str | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True)
class Sent:
    """One request: when it was due and sent, its outcome and its latencies (inf: none)."""

    index: int
    due: float
    outcome: str
    ttft: float
    e2e: float
    chunks: int


def prompt_of(index: int, tokens: int) -> str:
    rng = random.Random(index)
    return " ".join(rng.choice(WORDS) for _ in range(max(1, tokens)))


def _stream(target: TraceTarget, index: int, arrival: Arrival) -> tuple[str, float, float, int]:
    body = {
        "model": target.model,
        "prompt": prompt_of(index, arrival.prompt_tokens),
        "max_tokens": arrival.output_tokens,
        "temperature": 0.8,
        "stream": True,
    }
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    start = time.perf_counter()
    first, chunks = math.inf, 0
    conn = http.client.HTTPConnection(target.host, target.port, timeout=target.timeout_s)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), headers)
        response = conn.getresponse()
        if response.status != 200:
            response.read()
            return str(response.status), math.inf, time.perf_counter() - start, 0
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":  # an answer without text had its first token at its end
                end = time.perf_counter() - start
                return "ok", min(first, end), end, chunks
            event = json.loads(data)
            if "error" in event:
                return "error-event", first, math.inf, chunks
            if any(choice.get("text") for choice in event.get("choices", [])):
                chunks += 1
                if math.isinf(first):
                    first = time.perf_counter() - start
        return "no-answer", first, math.inf, chunks  # cut before [DONE]
    except (OSError, http.client.HTTPException, json.JSONDecodeError):
        return "no-answer", first, math.inf, chunks
    finally:
        conn.close()


def replay_live(
    target: TraceTarget, arrivals: Sequence[Arrival], max_threads: int = 256
) -> list[Sent]:
    """Send every arrival at its time; return one :class:`Sent` per arrival, in order."""
    results: list[Sent | None] = [None] * len(arrivals)
    lock = threading.Lock()

    def one(index: int, arrival: Arrival) -> None:
        outcome, ttft, e2e, chunks = _stream(target, index, arrival)
        with lock:
            results[index] = Sent(index, arrival.at, outcome, ttft, e2e, chunks)

    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="replay") as pool:
        for index, arrival in enumerate(arrivals):
            delay = arrival.at - (time.perf_counter() - begin)
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, index, arrival)
    sent = [r for r in results if r is not None]
    if len(sent) != len(arrivals):  # a thread died without a result: never silently
        raise RuntimeError(f"{len(arrivals) - len(sent)} requests have no recorded outcome")
    return sent


def outcomes(sent: Sequence[Sent]) -> dict[str, int]:
    return dict(Counter(s.outcome for s in sent))
