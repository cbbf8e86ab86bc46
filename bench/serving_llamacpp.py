"""Language-model serving on llama.cpp through conveyor, against llama.cpp's own server on the
same GGUF and against conveyor's torch engine, interleaved in one run.

    .venv/bin/python -m bench.serving_llamacpp [--seconds 20] [--rounds 2] [--quant q8_0]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.serving_llamacpp ...

SmolLM2-135M-Instruct (the shipped base) is registered as an fp32 version and converted with
``conveyor convert``'s converter to a GGUF version. Three arms, each a server on 127.0.0.1
with the same compute threads (``--threads``):

- ``conveyor-llamacpp``: ``bentoml serve`` of the GGUF version (keys, limits, routing,
  metrics: the whole HTTP API in front of llama.cpp);
- ``llamacpp-own``: ``xllamacpp``'s own HTTP server on the same GGUF file, nothing in front;
- ``conveyor-torch``: ``bentoml serve`` of the fp32 version on the torch decode engine.

Closed loop: ``c`` clients (c = 1 and 8) send streamed chat requests one after another, each a
different E2E prompt, 64 new tokens, greedy. Per arm and concurrency: output tokens per second
(median over rounds), p50 / p99 time to first token, and the ratios against llama.cpp's own
server and against the torch engine. Arms alternate within each round.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from conveyor.ports import free_port
from conveyor.settings import Settings
from serving.control.server import serve_command, serve_environment
from testbed.chat_traffic import e2e_prompts
from testbed.live_server import wait_ready

MAX_TOKENS = 64
DEPLOYMENTS = {"conveyor-torch": "bench-torch", "conveyor-llamacpp": "bench-gguf"}


@dataclass
class Arm:
    name: str
    host: str
    port: int
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    runs: dict[int, list[float]] = field(default_factory=dict)  # c -> tokens/s per round
    ttfts: dict[int, list[float]] = field(default_factory=dict)
    failures: int = 0


def _register(settings: Settings, deployment: str) -> str:
    """SmolLM2-135M-Instruct as an fp32 causal-lm version of ``deployment``, promoted."""
    from conveyor.pretrained import SMOLLM2, resolve_pretrained
    from conveyor.registry import open_registry
    from testbed.versions import register_llm

    base = resolve_pretrained(SMOLLM2, settings.cache_dir)
    assert base is not None
    registry = open_registry(settings)
    version = register_llm(
        registry, settings, base.path, max_new_tokens=MAX_TOKENS, deployment=deployment,
        max_length=192,
    )  # fmt: skip
    registry.close()
    return version


def _prepare(settings: Settings, quant: str) -> tuple[str, str]:
    from conversion import convert_version
    from conveyor.registry import open_registry
    from serving.control.rollout import promote

    torch_version = _register(settings, DEPLOYMENTS["conveyor-torch"])
    fp32 = _register(settings, DEPLOYMENTS["conveyor-llamacpp"])
    registry = open_registry(settings)
    started = time.monotonic()
    gguf = convert_version(registry, settings, fp32, quant=quant)
    print(f"converted {fp32} to GGUF {quant} in {time.monotonic() - started:.0f} s")
    promote(registry, gguf.version, canary_percent=0, timeout=5)
    path = str(Path(gguf.artifact_uri or "") / "model.gguf")
    registry.close()
    return torch_version, path


def _start(settings: Settings, deployment: str, threads: int, log: Path) -> tuple[Any, int]:
    port = free_port()
    env = serve_environment(settings, deployment, 1, torch_threads=threads)
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(port), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    wait_ready(port, process=process, timeout=300)
    return process, port


_OWN_SERVER = """
import sys, time, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.n_parallel = 8
params.n_ctx = 2048 * 8
params.cpuparams.n_threads = int(sys.argv[2])
params.cpuparams_batch.n_threads = int(sys.argv[2])
params.verbosity = -1
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
while True:
    time.sleep(60)
"""


def _own_server(gguf: str, threads: int, log: Path) -> tuple[Any, str]:
    """llama.cpp's own server (xllamacpp) on ``gguf`` in a process of its own, like the
    conveyor arms; its address once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-c", _OWN_SERVER, gguf, str(threads)],
        stdout=subprocess.PIPE, stderr=log.open("wb"), text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _one(arm: Arm, prompt: str) -> tuple[float, int] | None:
    """One streamed chat request: (time to first token, output tokens), None when it failed."""
    body = {
        "model": arm.model, "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    conn = http.client.HTTPConnection(arm.host, arm.port, timeout=120)
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    try:
        headers = {"content-type": "application/json", **arm.headers}
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        response = conn.getresponse()
        if response.status != 200:
            return None
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
            choices = chunk.get("choices") or []
            if first is None and choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter() - start
    finally:
        conn.close()
    return (first if first is not None else time.perf_counter() - start), tokens


def _phase(arm: Arm, clients: int, seconds: float, prompts: list[str]) -> None:
    tokens = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        n = index
        while time.perf_counter() < deadline:
            result = _one(arm, prompts[n % len(prompts)])
            n += clients
            if result is None:
                arm.failures += 1
                continue
            ttft, used = result
            tokens[index] += used
            arm.ttfts.setdefault(clients, []).append(ttft)

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    arm.runs.setdefault(clients, []).append(sum(tokens) / (time.perf_counter() - started))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _report(arms: list[Arm]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for arm in arms:
        for c, runs in arm.runs.items():
            table.setdefault(str(c), {})[arm.name] = {
                "tokens_per_s": round(statistics.median(runs), 1),
                "ttft_p50_ms": round(1000 * _quantile(arm.ttfts.get(c, []), 0.5), 1),
                "ttft_p99_ms": round(1000 * _quantile(arm.ttfts.get(c, []), 0.99), 1),
                "failures": arm.failures,
            }
    for row in table.values():
        ours = row["conveyor-llamacpp"]["tokens_per_s"]
        row["ratio_vs_llamacpp_own"] = round(ours / row["llamacpp-own"]["tokens_per_s"], 3)
        row["ratio_vs_torch"] = round(ours / row["conveyor-torch"]["tokens_per_s"], 3)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quant", default="q8_0")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-llamacpp-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    settings = Settings()
    torch_version, gguf = _prepare(settings, args.quant)
    processes = []
    arms: list[Arm] = []
    try:
        for name, deployment in DEPLOYMENTS.items():
            process, port = _start(settings, deployment, args.threads, home / f"{name}.log")
            processes.append(process)
            arms.append(Arm(name, "127.0.0.1", port, deployment))
        own, listening = _own_server(gguf, args.threads, home / "llamacpp-own.log")
        processes.append(own)
        address = urlparse(listening)
        arms.insert(1, Arm("llamacpp-own", address.hostname or "", address.port or 0, "gguf"))
        prompts = list(e2e_prompts())
        for round_ in range(args.rounds):
            for clients in (1, 8):
                for arm in arms if round_ % 2 == 0 else arms[::-1]:
                    _phase(arm, clients, args.seconds, prompts[round_ * 97 :])
                    print(f"round {round_ + 1} c={clients} {arm.name}: "
                          f"{arm.runs[clients][-1]:.1f} tokens/s", flush=True)  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
    report = {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "threads": args.threads, "quant": args.quant, "seconds": args.seconds,
        "rounds": args.rounds, "torch_version": torch_version, "by_concurrency": _report(arms),
    }  # fmt: skip
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
