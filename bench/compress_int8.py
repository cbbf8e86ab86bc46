"""int8 ONNX against fp32 ONNX on a trained CLINC150 classifier, interleaved in one run.

    .venv/bin/python -m bench.compress_int8 --home DIR --version clinc150-minilm:vN
        [--seconds 6] [--rounds 3] [--threads 2]

``--home`` is a CONVEYOR_HOME holding a trained classification version (``conveyor train
recipes/clinc150-minilm.yaml`` with that home). For each quant (``int8``, one scale per
matrix; ``int8-per-channel``, one per column) the real path runs: ONNX Runtime's quantizer
writes a child version and the parity gate judges it against its parent on the whole test
split (5,500 CLINC150 texts: accuracy, in-scope accuracy, the paired bootstrap interval of
the change). Then, for fp32 ONNX (the parent, packaged: the export serving uses) and the
better int8 child, alternately in the same run:

- texts/s of the runtime alone, batches of 32 test texts;
- HTTP: requests/s and p99 at concurrency 16 through one conveyor worker that serves both
  (promotion swaps them: each stays loaded as the other's standby), each request a
  different test text, prediction cache off;
- resident memory: a fresh process per graph, RSS after loading it and running one batch,
  minus RSS after the same imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.serving_load import _rps
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.clinc import clinc_texts
from testbed.live_server import running_server

QUANTS = ("int8", "int8-per-channel")
_RSS_PROBE = """
import sys, numpy, torch, onnxruntime
from conveyor.onnx_model import OnnxClassifier
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6
before = rss()
model = OnnxClassifier(sys.argv[1], threads=int(sys.argv[2]))
ids = torch.randint(1000, 2000, (32, 24))
model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
print(rss() - before)
"""


def _quantize(registry: Registry, settings: Settings, parent: str, out: Path) -> dict[str, Any]:
    from flows.compress import quantize_and_judge
    from gates import footprint

    found = {}
    for quant in QUANTS:
        started = time.monotonic()
        outcome = quantize_and_judge(
            registry, settings, parent, quant=quant, against="none", out_dir=out / quant
        )
        parity = outcome.parity
        assert parity.champion is not None, parity.report
        ours, theirs = parity.candidate.metrics, parity.champion.metrics
        gain = parity.verdict.gain
        found[quant] = {
            "version": outcome.version,
            "passed": outcome.passed,
            "reason": outcome.reason,
            "accuracy": (ours["accuracy"], theirs["accuracy"]),
            "in_scope_accuracy": (ours["in_scope_accuracy"], theirs["in_scope_accuracy"]),
            "change_ci": gain.as_dict() if gain else None,
            "footprint": footprint(ours, theirs),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps({quant: found[quant]}, indent=1), flush=True)
    return found


def _fp32_onnx_version(registry: Registry, parent: str) -> str:
    """The parent again, served by ONNX Runtime fp32 (packaging exports its graph)."""
    from serving.control.packaging import package_version

    record = registry.resolve(parent)
    spec = {**record.serving_spec, "backend": "onnx"}
    copy = registry.register_version(
        record.deployment,
        task=record.task,
        base_model=record.base_model,
        recipe=record.recipe,
        artifact_uri=record.artifact_uri,
        content_sha256=record.content_sha256,
        serving_spec=spec,
        reason="bench: the parent served by fp32 ONNX Runtime",
    ).version
    package_version(registry, copy, build_bento=False)
    return copy


def _texts_per_second(loaded: Any, texts: list[str], seconds: float) -> float:
    from serving.engine.inference import classify_texts

    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = texts[done % len(texts) : done % len(texts) + 32] or texts[:32]
        classify_texts(loaded, batch, 1, 64)
        done += len(batch)
    return done / (time.perf_counter() - start)


def _rss_mb(graph: Path, threads: int) -> float:
    """RSS a fresh process adds by loading ``graph`` and classifying 32 texts of 24 tokens."""
    result = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(graph), str(threads)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def _interleaved(
    registry: Registry, settings: Settings, arms: dict[str, str], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    import torch

    from serving.control.packaging import package_version
    from serving.control.rollout import promote
    from serving.worker.loading import load_version

    torch.set_num_threads(args.threads)
    for version in arms.values():
        package_version(registry, version, build_bento=False)
    loaded = {name: load_version(registry.resolve(v)).loaded for name, v in arms.items()}
    texts = list(clinc_texts())
    figures: dict[str, dict[str, list[float]]] = {n: {} for n in arms}
    deployment = next(iter(arms.values())).split(":")[0]
    with running_server(
        settings, workers=1, torch_threads=args.threads, deployment=deployment, ready=False
    ) as server:
        for _round in range(args.rounds):
            for name, version in arms.items():
                figures[name].setdefault("texts_per_s", []).append(
                    _texts_per_second(loaded[name], texts, args.seconds)
                )
                promote(registry, version, canary_percent=0, timeout=180)
                rps, p99, failed = _rps(server.port, args.seconds)
                figures[name].setdefault("http_rps", []).append(rps)
                figures[name].setdefault("http_p99_ms", []).append(p99)
                figures[name].setdefault("failed", []).append(float(failed))
                print(f"round {_round + 1} {name}: {figures[name]}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--version", required=True, help="the trained fp32 classifier")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["CONVEYOR_HOME"] = str(args.home)
    os.environ["CONVEYOR_CACHE_SIZE"] = "0"
    settings = Settings(home=args.home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    print(f"load average before: {os.getloadavg()}", flush=True)
    quants = _quantize(registry, settings, args.version, args.home / "bench-int8")
    best = min(QUANTS, key=lambda q: -quants[q]["accuracy"][0])
    arms = {"fp32 onnx": _fp32_onnx_version(registry, args.version)}
    arms[f"{best} onnx"] = str(quants[best]["version"])
    figures = _interleaved(registry, settings, arms, args)
    folders = {n: str(registry.resolve(v).artifact_uri) for n, v in arms.items()}
    import bentoml

    from conveyor.model_folder import ONNX_INT8_FILE, bento_model_tag

    record = registry.resolve(arms["fp32 onnx"])
    store = bentoml.models.get(
        bento_model_tag(record.version, record.artifact_uri, record.content_sha256)
    ).path
    rss = {
        "fp32 onnx": _rss_mb(Path(store) / "model.onnx", args.threads),
        f"{best} onnx": _rss_mb(Path(folders[f"{best} onnx"]) / ONNX_INT8_FILE, args.threads),
    }
    print(f"load average after: {os.getloadavg()}")
    print(f"\nparent {args.version}; quant chosen for serving: {best}")
    for name, values in figures.items():
        summary = {k: round(statistics.median(v), 1) for k, v in values.items()}
        print(f"  {name}: medians of {args.rounds} rounds {summary}; RSS {rss[name]:.0f} MB")
    print(json.dumps({"quants": quants, "figures": figures, "rss_mb": rss}, default=str))


if __name__ == "__main__":
    main()
