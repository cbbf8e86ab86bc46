"""A replica's cold start: `bentoml serve` started until `/readyz` answers (the version
loaded, warmed and smoke-checked), for SmolLM2-135M-Instruct on the torch engine.

    .venv/bin/python -m bench.cold_start --repeats 3

What a new Kubernetes pod costs before it takes traffic, less the image pull and scheduling
(``bench/autoscale_replay.py`` takes it as the pod start delay). Registers the shipped base
as a causal-lm version in a throw-away CONVEYOR_HOME; the conversion is cached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cold_start.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["CONVEYOR_HOME"] = home
        from conveyor.pretrained import SMOLLM2, resolve_pretrained
        from conveyor.registry import open_registry
        from conveyor.settings import load_settings
        from testbed.live_server import running_server
        from testbed.versions import register_llm

        settings = load_settings()
        base = resolve_pretrained(SMOLLM2, settings.cache_dir)
        assert base is not None
        registry = open_registry(settings)
        version = register_llm(registry, settings, base.path, max_new_tokens=64)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            with running_server(settings):
                seconds.append(time.perf_counter() - start)
            print(f"{version}: ready after {seconds[-1]:.1f} s", flush=True)
    result = {
        "model": "SmolLM2-135M-Instruct fp32, torch engine, 1 worker",
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
