"""What tenant isolation costs a language model's throughput: token reservations and tokenizing
off the event loop, against the same build without them, in one interleaved run.

    .venv/bin/python -m bench.tenant_overhead [--model smollm2|tiny] [--store local|redis]

Closed loop at concurrency 8 over one decode engine; each request a different E2E prompt
(chat template), greedy, ``--max-tokens`` new tokens. Two arms on the same engine, model and
prompts, alternating which goes first:

- ``isolated`` (as shipped): the prompt is tokenized on the worker's tokenizing thread
  (``Runtime.tokenize``'s executor), prompt + max_tokens are reserved from the app's token
  limits (``Gate.reserve_tokens``; ``--store redis`` uses the Lua script on 127.0.0.1:6379)
  before decoding, and the unused part is settled after (``Gate.settle_tokens``);
- ``bare``: the prompt is tokenized inline on the event loop, nothing is reserved or settled.

Reported: output tokens/s per arm (median over repeats) and the ratio isolated / bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.serving_generate import E2E_TEST, _model
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import load_settings
from serving.api.openai.protocol import parse_request
from serving.api.openai.serving import prompt_ids
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams
from serving.worker.access import Gate
from serving.worker.limits import LocalLimiter
from serving.worker.token_limits import LocalTokenLimiter, RedisTokenLimiter


def _requests(count: int) -> list[Any]:
    seen: dict[str, None] = {}
    for line in E2E_TEST.read_text().splitlines():
        seen.setdefault(json.loads(line)["messages"][0]["content"], None)
    return [
        parse_request("chat", {"model": "d", "messages": [{"role": "user", "content": text}]})
        for text in list(seen)[:count]
    ]


def _gate(store: str, home: Path) -> tuple[Gate, str]:
    registry = Registry.from_url(f"sqlite:///{home / 'registry.db'}", actor="bench")
    _, key = registry.create_api_key("bench", ["d"], tokens_per_minute=10**9)
    tokens = RedisTokenLimiter("redis://127.0.0.1:6379/0", prefix=f"bench-{time.time_ns()}")
    gate = Gate(
        lambda: registry,
        "d",
        required=True,
        limiter=LocalLimiter(),
        tokens=tokens if store == "redis" else LocalTokenLimiter(),
    )
    assert gate.admit(f"Bearer {key}") == "bench"
    return gate, "bench"


async def _one(
    arm: str, engine: DecodeEngine, tokenizer: Any, llm: Any, gate: Gate, pool: Any, most: int
) -> int:
    params = SamplingParams(max_tokens=most)
    if arm == "isolated":
        loop = asyncio.get_running_loop()
        work = partial(contextvars.copy_context().run, prompt_ids, tokenizer, llm)
        ids = await loop.run_in_executor(pool, work)
        held = await asyncio.to_thread(gate.reserve_tokens, "bench", len(ids) + most)
    else:
        ids = prompt_ids(tokenizer, llm)
    _, last = await engine.complete(ids, params)
    if arm == "isolated":
        gate.settle_tokens(held, last.prompt_tokens + last.completion_tokens)
    return last.completion_tokens


async def _closed_loop(arm: str, batch: list[Any], **parts: Any) -> float:
    queue, tokens = list(batch), 0

    async def client() -> None:
        nonlocal tokens
        while queue:
            tokens += await _one(arm, llm=queue.pop(), **parts)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(8)))
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--store", choices=("local", "redis"), default="local")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--requests", type=int, default=24, help="per arm and repeat")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    settings = load_settings()
    apply_offline_environment(settings)
    model, tokenizer = _model(args.model)
    engine = DecodeEngine(model, tokenizer, max_batch=8, context=2048, name="bench")
    with tempfile.TemporaryDirectory() as home, ThreadPoolExecutor(1) as pool:
        gate, _ = _gate(args.store, Path(home))
        parts = {"engine": engine, "tokenizer": tokenizer, "gate": gate, "pool": pool}
        parts["most"] = args.max_tokens
        requests = _requests(2 + args.repeats * args.requests)
        for arm in ("isolated", "bare"):  # warm-up
            asyncio.run(_closed_loop(arm, requests[:2], **parts))
        speeds: dict[str, list[float]] = {"isolated": [], "bare": []}
        offset = 2
        for repeat in range(args.repeats):
            order = ("isolated", "bare") if repeat % 2 == 0 else ("bare", "isolated")
            batch = requests[offset : offset + args.requests]  # the same prompts for both arms
            offset += args.requests
            for arm in order:
                speeds[arm].append(asyncio.run(_closed_loop(arm, batch, **parts)))
                print(f"  {arm}: {speeds[arm][-1]:.1f} tok/s", flush=True)
    engine.close()
    isolated, bare = (statistics.median(speeds[a]) for a in ("isolated", "bare"))
    print(f"\nmodel {args.model}, store {args.store}, c=8, max_tokens {args.max_tokens}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} repeats")  # fmt: skip
    print("| arm | output tok/s (median) |\n|---|---|")
    print(f"| isolated (reserve + settle, off-loop tokenizing) | {isolated:.1f} |")
    print(f"| bare (neither) | {bare:.1f} |")
    print(f"isolated / bare: {isolated / bare:.3f}")


if __name__ == "__main__":
    main()
