"""Ten LoRA deployments on one base in one `bentoml serve`, against one server per deployment.

    .venv/bin/python -m bench.many_deployments [--model tiny|smollm2] [--n 10] [--seconds 20]

Each deployment is a LoRA adapter (r=16 on every projection, as recipes/e2e-smollm2.yaml
trains it) on the same base, promoted. Measured on real servers on 127.0.0.1:

- memory: resident memory of the whole server (its process tree: BentoML's parent and the
  worker) serving all N, every adapter loaded, against one server of one deployment; N
  single-deployment servers are N times that one (computed, not started side by side);
- cold adapters: the same server with ``--max-loaded-adapters 2``, streamed completions
  naming the deployments in turn, so each finds its adapter evicted: time to the first token
  (first ``data:`` event), p50/p99, beside the same requests with every adapter loaded;
- eviction frees memory: in this process, every adapter loaded on the base, then all but
  one evicted: resident memory before and after;
- throughput: four closed-loop clients for ``--seconds``, greedy chat of 3-6 tokens, all
  naming one deployment, then spread over all N (no adapter bound): answers per second and
  the ratio (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.adapter_swap import _adapter, _base_folder, _rss
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from serving.engine.adapter_budget import AdapterBudget
from serving.engine.adapters import AdapterPool
from serving.worker.loading import load_version
from testbed.adapter_traffic import failed, register_adapter, spread_chat, varied_chat
from testbed.live_server import Server, running_server
from testbed.traffic import Traffic


def _tree_rss(server: Server) -> int:
    root = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def _first_token_s(port: int, model: str, n: int) -> float:
    """One streamed completion: seconds to its first event."""
    body = {"model": model, "prompt": f"Item {n}: describe a quiet cafe.", "max_tokens": 4}
    body |= {"temperature": 0, "stream": True}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, (response.status, response.read())
    head = response.read(5)  # the first event's first bytes (the body is chunked)
    assert head == b"data:", head
    first = time.perf_counter() - start
    response.read()
    conn.close()
    return first


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _throughput(port: int, request: Any, seconds: float) -> tuple[float, int]:
    with Traffic(port, clients=4, request=request, timeout=60) as traffic:
        time.sleep(2.0)  # warm
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    window = [a for a in traffic.answers if start <= a.sent_at < end]
    return len(window) / (end - start), sum(1 for a in window if failed(a))


def _warm_all(port: int, names: list[str]) -> None:
    for i, name in enumerate(names):
        _first_token_s(port, name, i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="tiny")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cold", type=int, default=40, help="cold-adapter requests")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-many-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    settings = Settings(home=home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    base = _base_folder(args.model, home)
    names = [f"app-{i:02d}" for i in range(args.n)]
    versions = []
    for seed, name in enumerate(names, start=1):
        adapter = _adapter(base, home / f"adapter-{name}", seed)
        versions.append(register_adapter(registry, settings, base, adapter, deployment=name))
        promote(registry, versions[-1], canary_percent=0, timeout=120)
    both = ",".join(names)
    print(f"many deployments: --model {args.model}, {args.n} LoRA deployments, load {_load()}")

    with running_server(settings, deployment=names[0], ready_timeout=900) as one:
        _warm_all(one.port, names[:1])
        single_rss = _tree_rss(one)
        one_rps, one_failed = _throughput(one.port, varied_chat(names[0], 1000), args.seconds)
    with running_server(settings, deployment=both, ready_timeout=900) as many:
        _warm_all(many.port, names)
        many_rss = _tree_rss(many)
        warm = [_first_token_s(many.port, names[i % args.n], i) for i in range(args.cold)]
        spread_rps, spread_failed = _throughput(many.port, spread_chat(names, 1000), args.seconds)
        same_rps, same_failed = _throughput(many.port, varied_chat(names[0], 1000), args.seconds)
    evicted_rss = _eviction_rss(registry, versions)
    bounded = settings.model_copy(update={"max_loaded_adapters": 2})
    with running_server(bounded, deployment=both, ready_timeout=900) as small:
        cold = [_first_token_s(small.port, names[i % args.n], i) for i in range(args.cold)]
        pool = small.status()["adapter_pool"]

    mb = 2**20
    print(
        f"  memory: one server of {args.n}: {many_rss / mb:.0f} MB RSS; one server of one: "
        f"{single_rss / mb:.0f} MB, so {args.n} servers: {args.n * single_rss / mb:.0f} MB "
        f"({args.n * single_rss / many_rss:.1f}x)"
    )
    print(
        f"  first token, adapter loaded: p50 {1000 * statistics.median(warm):.0f} ms, "
        f"p99 {1000 * _pct(warm, 0.99):.0f} ms; adapter evicted (bound 2 of {args.n}): "
        f"p50 {1000 * statistics.median(cold):.0f} ms, p99 {1000 * _pct(cold, 0.99):.0f} ms "
        f"({len(cold)} requests, {pool['loads']} loads, {pool['evictions']} evictions)"
    )
    print(f"  eviction: {evicted_rss}")
    print(
        f"  throughput (4 clients, {args.seconds:g} s): one deployment's own server "
        f"{one_rps:.2f}/s; server of {args.n}, all to one: {same_rps:.2f}/s, spread over "
        f"{args.n}: {spread_rps:.2f}/s ({spread_rps / same_rps:.2f}x); failed: "
        f"{one_failed + spread_failed + same_failed}"
    )


def _eviction_rss(registry: Registry, versions: list[str]) -> str:
    """In this process, as a worker does it: every adapter loaded on one base, then all but
    one evicted (the bound lowered to 1 and one more loaded): resident memory before and
    after, against the adapters' weight bytes."""
    pool = AdapterPool(max_batch=8, single_base=True)
    served = [load_version(registry.resolve(v), pool) for v in versions[:-1]]
    gc.collect()
    full, view = _rss(), pool.view()
    pool.budget = AdapterBudget(max_loaded=1)
    last = load_version(registry.resolve(versions[-1]), pool)
    engine = last.engine
    assert engine is not None
    deadline = time.monotonic() + 60
    while len(engine.adapters()) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    after = _rss()
    evicted = len(served)
    engine.close()
    mb = 2**20
    return (
        f"{view['loaded']} adapters loaded ({view['loaded_bytes'] / mb:.1f} MB of weights): "
        f"RSS {full / mb:.0f} MB; {evicted} evicted, one other loaded: RSS {after / mb:.0f} MB "
        f"(freed {(full - after) / mb:.0f} MB; the evicted adapters' weights: "
        f"{(view['loaded_bytes'] * (evicted - 1) / evicted) / mb:.0f} MB net of the one loaded)"
    )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
