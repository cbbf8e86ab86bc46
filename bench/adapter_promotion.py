"""Promotion and rollback of LoRA versions under chat load, on a real `bentoml serve` worker.

Four closed-loop clients send varied chat completions (greedy, 3-6 tokens, every third one
streamed) to /v1/chat/completions while v2 (an adapter on the same base) is promoted without
canary, then v1 comes back from hot standby. Before the alias moves, the promotion has the
worker load and check v2 beside v1 (``prewarm_s``). Per move: failed requests (non-2xx, no answer,
or a stream that broke), alias move -> 100% new version (the last answer from another version
among requests sent after the alias moved; converge_s: alias move -> the worker reports it
serves the new version), p99 latency in the 2 s before vs during the move.
Then memory per standby adapter, in this process: parameter bytes of an adapter vs the base,
and RSS before/after a second adapter joins the base (AdapterPool, as a worker does it).

    .venv/bin/python -m bench.adapter_promotion [--model tiny|smollm2]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.adapter_swap import _adapter, _base_folder, _bytes, _rss
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import Outcome, promote, rollback
from serving.engine.adapters import AdapterPool
from serving.worker.loading import load_version, release_version
from testbed.adapter_traffic import (
    alias_to_full,
    failed,
    monotonic_of,
    p99_ms,
    register_adapter,
    varied_chat,
)
from testbed.live_server import running_server
from testbed.traffic import Traffic
from testbed.versions import DEPLOYMENT


def _move(traffic: Traffic, label: str, run: Any) -> dict[str, Any]:
    start = time.monotonic()
    outcome: Outcome = run()
    end = time.monotonic()
    time.sleep(1.5)
    moved = monotonic_of(outcome.rollout.started_at)
    answers = list(traffic.answers)
    steady = [a for a in answers if start - 2.0 <= a.sent_at < start]
    during = [a for a in answers if start <= a.sent_at <= end + 0.5]
    window = [a for a in answers if a.sent_at >= start - 2.0]
    return {
        "move": label,
        "requests": len(window),
        "failed": sum(1 for a in window if failed(a)),
        "command_s": round(end - start, 2),
        "verify_load_s": outcome.rollout.details.get("verify_load_seconds"),
        "prewarm_s": outcome.rollout.details.get("prewarm_seconds"),
        "converge_s": round(outcome.converge_seconds, 3),
        "alias_to_100pct_s": round(alias_to_full(window, moved, outcome.rollout.version), 3),
        "p99_steady_ms": round(p99_ms(steady), 1),
        "p99_move_ms": round(p99_ms(during), 1),
    }


def _memory(registry: Registry, v1: str, v2: str) -> dict[str, Any]:
    """One base, then a second adapter on it: what the standby version costs."""
    pool = AdapterPool(max_batch=8)
    gc.collect()
    first = load_version(registry.resolve(v1), pool)
    model = first.loaded.model
    gc.collect()
    rss_one, bytes_one = _rss(), _bytes(model)
    second = load_version(registry.resolve(v2), pool)
    gc.collect()
    rss_two, bytes_two = _rss(), _bytes(model)
    adapter_bytes = bytes_two - bytes_one
    base_bytes = bytes_one - adapter_bytes
    engines = [shared.engine for shared in pool.bases().values()]
    release_version(second, pool)
    release_version(first, pool)
    for engine in engines:  # its thread ends before the interpreter does
        engine.close()
    return {
        "base_param_MB": round(base_bytes / 2**20, 1),
        "adapter_param_MB": round(adapter_bytes / 2**20, 2),
        "adapter_vs_base_pct": round(100 * adapter_bytes / base_bytes, 2),
        "rss_delta_second_adapter_MB": round((rss_two - rss_one) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="tiny")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-adapter-promo-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    settings = Settings(home=home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    base = _base_folder(args.model, home)
    v1, v2 = (
        register_adapter(registry, settings, base, _adapter(base, home / f"adapter-{s}", s))
        for s in (1, 2)
    )
    promote(registry, v1, canary_percent=0, timeout=60)
    rows = []
    with (
        running_server(settings) as server,
        Traffic(server.port, clients=args.clients, request=varied_chat(), timeout=60) as traffic,
    ):
        time.sleep(4.0)
        rows.append(
            _move(
                traffic, "promote v2 (no canary)", lambda: promote(registry, v2, canary_percent=0)
            )
        )
        time.sleep(2.0)
        rows.append(
            _move(traffic, "rollback to v1 (hot standby)", lambda: rollback(registry, DEPLOYMENT))
        )
        status = server.status()
    (held,) = status["bases"].values()
    print(f"adapter promotion under chat load: --model {args.model}, {args.clients} clients")
    print(f"  worker: 1 base, engine {held['engine']}, adapters {held['adapters']}")
    for row in rows:
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print("  memory: " + ", ".join(f"{k}={v}" for k, v in _memory(registry, v1, v2).items()))


if __name__ == "__main__":
    main()
