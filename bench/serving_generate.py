"""Generative serving in-process: the decode engine against one Hugging Face ``generate`` per
request, run one at a time under a lock (the naive server), on the same model and threads.

    .venv/bin/python -m bench.serving_generate [--model smollm2|tiny] [--repeats 2]

Closed loop: ``c`` clients (c = 1 and 8) each send requests one after the other; prompts are
E2E meaning representations rendered with the chat template, each request a different one.
Arms and concurrencies alternate in one run (engine, naive, then naive, engine ...). Greedy
decoding, so both arms write the same text. Reported per arm and concurrency: output tokens
per second (median over repeats), p50 / p99 time to first token (all requests pooled), and
the ratios engine / naive. Time to first token of the naive server is when ``generate``
hands its first new token to a streamer (it may first wait for the lock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.settings import load_settings
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams

E2E_TEST = Path(__file__).resolve().parents[1] / "data" / "e2e_nlg" / "test.jsonl"
Request = Callable[[list[int], int], Awaitable[tuple[float, int]]]  # -> (ttft s, tokens)


@dataclass
class Run:
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    def tokens_per_second(self) -> float:
        return statistics.median(t / s for t, s in zip(self.tokens, self.seconds, strict=True))

    def ttft(self, q: float) -> float:
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _model(name: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    converted = resolve_pretrained(SMOLLM2, load_settings().cache_dir)
    assert converted is not None
    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    if name == "tiny":
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
        tiny: Any = LlamaForCausalLM(config)
        return tiny.eval(), tokenizer
    model: Any = AutoModelForCausalLM.from_pretrained(str(converted.path), dtype=torch.float32)
    return model.eval(), tokenizer


def _prompts(tokenizer: Any, count: int) -> list[list[int]]:
    """Distinct E2E meaning representations as chat prompts (every request a new one)."""
    seen: dict[str, None] = {}
    for line in E2E_TEST.read_text().splitlines():
        seen.setdefault(json.loads(line)["messages"][0]["content"], None)
    texts = list(seen)[:count]
    return [
        list(tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=True,
                                           add_generation_prompt=True, return_dict=False))
        for t in texts
    ]  # fmt: skip


def engine_request(engine: DecodeEngine) -> Request:
    async def run(ids: list[int], max_tokens: int) -> tuple[float, int]:
        start = time.perf_counter()
        first = None
        last = None
        async for event in engine.stream(ids, SamplingParams(max_tokens=max_tokens)):
            first = first or time.perf_counter() - start
            last = event
        assert first is not None and last is not None
        return first, last.completion_tokens

    return run


class _FirstToken:
    """A streamer that notes when ``generate`` hands over its first new token."""

    def __init__(self) -> None:
        self.calls = 0
        self.at: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2 and self.at is None:  # the first call carries the prompt
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


def naive_request(model: Any, tokenizer: Any) -> Request:
    lock = threading.Lock()
    device = next(model.parameters()).device

    def generate(ids: list[int], max_tokens: int, start: float) -> tuple[float, int]:
        streamer = _FirstToken()
        with lock, torch.inference_mode():
            out = model.generate(
                torch.tensor([ids], device=device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                max_new_tokens=max_tokens, do_sample=False, streamer=streamer,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )  # fmt: skip
        assert streamer.at is not None
        return streamer.at - start, int(out.shape[1] - len(ids))

    async def run(ids: list[int], max_tokens: int) -> tuple[float, int]:
        return await asyncio.to_thread(generate, ids, max_tokens, time.perf_counter())

    return run


async def _closed_loop(
    request: Request, prompts: list[list[int]], clients: int, max_tokens: int
) -> tuple[float, int, list[float]]:
    queue = list(prompts)
    ttfts: list[float] = []
    tokens = 0

    async def client() -> None:
        nonlocal tokens
        while queue:
            ttft, count = await request(queue.pop(), max_tokens)
            ttfts.append(ttft)
            tokens += count

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, tokens, ttfts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--requests", type=int, default=16, help="per run at concurrency 8")
    args = parser.parse_args()
    apply_offline_environment(load_settings())
    model, tokenizer = _model(args.model)
    engine = DecodeEngine(model, tokenizer, max_batch=8, context=2048, name="bench")
    arms = {"engine": engine_request(engine), "naive": naive_request(model, tokenizer)}
    prompts = _prompts(tokenizer, 1000)
    runs: dict[tuple[str, int], Run] = {}
    asyncio.run(_closed_loop(arms["engine"], prompts[:2], 1, 4))  # warm-up, both arms
    asyncio.run(_closed_loop(arms["naive"], prompts[:2], 1, 4))
    offset = 2
    for repeat in range(args.repeats):
        for clients in (1, 8):
            count = args.requests // 2 if clients == 1 else args.requests
            batch = prompts[offset : offset + count]
            order = list(arms.items())[:: -1 if repeat % 2 else 1]  # each arm goes first in turn
            for name, request in order:  # the same prompts for both arms
                seconds, tokens, ttfts = asyncio.run(
                    _closed_loop(request, list(batch), clients, args.max_tokens)
                )
                run = runs.setdefault((name, clients), Run())
                run.seconds.append(seconds)
                run.tokens.append(tokens)
                run.ttfts.extend(ttfts)
                print(f"  {name} c={clients}: {tokens / seconds:.1f} tok/s", flush=True)
            offset += count
    engine.close()
    _report(runs, args, torch.get_num_threads())


def _report(runs: dict[tuple[str, int], Run], args: argparse.Namespace, threads: int) -> None:
    print(f"\nmodel {args.model}, max_tokens {args.max_tokens}, torch threads {threads}, "
          f"{args.repeats} repeats, greedy")  # fmt: skip
    print("| concurrency | arm | output tok/s | p50 TTFT (ms) | p99 TTFT (ms) |")
    print("|---|---|---|---|---|")
    for (name, clients), run in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"| {clients} | {name} | {run.tokens_per_second():.1f} | "
              f"{run.ttft(0.5) * 1000:.0f} | {run.ttft(0.99) * 1000:.0f} |")  # fmt: skip
    for clients in (1, 8):
        ours, naive = runs[("engine", clients)], runs[("naive", clients)]
        print(f"c={clients}: tokens/s x{ours.tokens_per_second() / naive.tokens_per_second():.2f}, "
              f"p99 TTFT engine/naive {ours.ttft(0.99) / naive.ttft(0.99):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
