"""Autoscaling replayed against a real arrival trace: the HPA rules KEDA runs, fed with one
replica's measured capacity, against a static fleet sized for the trace's peak minute.

    .venv/bin/python -m bench.autoscale_replay                      # the whole hour (shared data)
    .venv/bin/python -m bench.autoscale_replay --trace data/azure_llm_trace_2023/conv_10min.csv

The trace is the Azure LLM inference trace 2023 (conversation service; CC BY 4.0). Capacity
(BENCHMARKS.md, "Generative serving", quiet cores): SmolLM2-135M-Instruct on the torch decode
engine, 29.4 output tokens/s with one stream and 103.4 with 8 (one 2-core replica). The pod
start delay is the measured cold start (``bench/cold_start.py``: `bentoml serve` until
`/readyz`). The scaling rules are ``testbed.hpa.decide`` (the Kubernetes documentation's
algorithm) with the behaviour ``conveyor k8s render`` writes into the ScaledObject for each
candidate ``serving.autoscale``; the metrics are the ScaledObject's two queries for a language
model (waiting requests, output tokens/s). The chosen settings are the candidate with the
fewest replica-minutes whose p99 time to first token and SLO violations are no worse than those
of a static fleet sized for the peak minute at one replica's full measured throughput; for each
target share of that throughput, the best candidate is also set against a static fleet sized
for the peak at the same share (the same headroom).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

from conveyor.recipe.autoscale import AutoscaleSection
from serving.control.k8s import hpa_behavior
from testbed.azure_trace import WHOLE_HOUR, Arrival, read_trace, scale
from testbed.fleet import Capacity, Replay, Scaler, View, replay
from testbed.hpa import Bounds, Memory, Metric, behavior_from_manifest, decide
from testbed.trace_report import minute_rows, percentile, render_minutes

COLD_START = Path("bench/results/cold_start.json")
Tried = tuple[float, AutoscaleSection, Replay, dict[str, Any]]


def peak_rate(arrivals: list[Arrival]) -> float:
    """Output tokens/s of the busiest minute of arrivals."""
    per_minute: dict[int, int] = {}
    for a in arrivals:
        per_minute[int(a.at // 60)] = per_minute.get(int(a.at // 60), 0) + a.output_tokens
    return max(per_minute.values()) / 60


def static_scaler(replicas: int) -> Scaler:
    def keep(view: View) -> int:
        return replicas

    return keep


def hpa_scaler(settings: AutoscaleSection) -> Scaler:
    """The HPA over the ScaledObject's two language-model metrics, with its own memory."""
    behavior = behavior_from_manifest(hpa_behavior(settings))
    bounds = Bounds(settings.min_replicas, settings.max_replicas)
    memory = [Memory()]

    def scale_to(view: View) -> int:
        metrics = [
            Metric(view.waiting, settings.target_waiting),
            Metric(view.output_tokens_per_s, settings.target_output_tokens_per_second),
        ]
        replicas, memory[0] = decide(view.now, view.replicas, metrics, bounds, behavior, memory[0])
        return replicas

    return scale_to


def summary(run: Replay, slo: float, warmup_s: float) -> dict[str, Any]:
    """The figures of the requests that arrived after the warm-up (all are served)."""
    kept = [i for i, at in enumerate(run.arrivals) if at >= warmup_s]
    ttft = [run.ttft[i] for i in kept]
    e2e = [run.e2e[i] for i in kept]
    return {
        "requests": len(kept),
        "answered": sum(math.isfinite(e) for e in e2e),
        "replica_minutes": round(run.replica_minutes, 1),
        "ttft_p50_s": round(percentile(ttft, 50), 3),
        "ttft_p99_s": round(percentile(ttft, 99), 3),
        "e2e_p99_s": round(percentile(e2e, 99), 3),
        "over_slo": sum(not t <= slo for t in ttft),
        "max_replicas_used": max((n for _, n in run.replicas), default=0),
    }


SHARES = (0.6, 0.7, 0.8, 0.9, 1.0)  # of one replica's full throughput, per replica


def candidates(share: float, per_replica: float, most: int) -> list[AutoscaleSection]:
    grid = itertools.product((1.0, 2.0, 4.0), (60, 300), (2, 4))
    return [
        AutoscaleSection(
            min_replicas=1,
            max_replicas=most,
            target_output_tokens_per_second=round(share * per_replica, 1),
            target_waiting=waiting,
            scale_down_stabilization_seconds=down,
            scale_up_pods=up,
            scale_up_period_seconds=15,
            scale_down_pods=1,
            cooldown_seconds=60,
        )
        for waiting, down, up in grid
    ]


def warm_start(arrivals: list[Arrival], settings: AutoscaleSection) -> int:
    """Replicas a fleet already running would have for the first minute's load (both fleets
    start warm: the trace begins mid-day, not from nothing)."""
    first = sum(a.output_tokens for a in arrivals if a.at < 60) / 60
    wanted = math.ceil(first / settings.target_output_tokens_per_second)
    return min(max(wanted, settings.min_replicas), settings.max_replicas)


def cold_start_s(path: Path) -> float:
    return float(json.loads(path.read_text())["median_s"]) if path.is_file() else 24.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=WHOLE_HOUR)
    parser.add_argument("--rate", type=float, default=1.0, help="Arrival rate factor.")
    parser.add_argument("--tokens", type=float, default=1.0, help="Token size factor.")
    parser.add_argument("--max-prompt-tokens", type=int, default=2048)
    parser.add_argument("--slo-ttft", type=float, default=3.0, help="SLO on TTFT, seconds.")
    parser.add_argument("--prefill-tokens-per-second", type=float, default=1000.0)
    parser.add_argument("--tokens-per-second-one", type=float, default=29.4)
    parser.add_argument("--tokens-per-second-full", type=float, default=103.4)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--cold-start", type=float, default=None, help="Default: measured.")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=2.0,
        help="Served but not measured (the trace starts from an empty service: its first "
        "minute has 191 arrivals, the next ones 265-353).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    args = parser.parse_args()

    arrivals = scale(
        read_trace(args.trace),
        rate=args.rate,
        tokens=args.tokens,
        max_prompt_tokens=args.max_prompt_tokens,
    )
    start = args.cold_start if args.cold_start is not None else cold_start_s(COLD_START)
    capacity = Capacity(
        args.tokens_per_second_one,
        args.tokens_per_second_full,
        args.slots,
        args.prefill_tokens_per_second,
        start,
    )
    peak = peak_rate(arrivals)
    warmup = args.warmup_minutes * 60
    keys = (
        "target_output_tokens_per_second",
        "target_waiting",
        "scale_down_stabilization_seconds",
        "scale_up_pods",
    )
    statics: dict[float, dict[str, Any]] = {}
    tried = []
    for share in SHARES:
        # the static fleet sized for the peak minute at the same load per replica
        static_n = math.ceil(peak / (share * capacity.tokens_per_s_full))
        run = replay(arrivals, capacity, static_scaler(static_n), static_n, measure_from=warmup)
        statics[share] = {"replicas": static_n, **summary(run, args.slo_ttft, warmup)}
        for settings in candidates(share, capacity.tokens_per_s_full, 2 * static_n):
            first = warm_start(arrivals, settings)
            run = replay(arrivals, capacity, hpa_scaler(settings), first, measure_from=warmup)
            tried.append((share, settings, run, summary(run, args.slo_ttft, warmup)))

    def saved(t: Tried, against: dict[str, Any]) -> float:
        return 1 - float(t[3]["replica_minutes"]) / float(against["replica_minutes"])

    def no_worse(t: Tried, than: dict[str, Any]) -> bool:
        return bool(
            t[3]["ttft_p99_s"] <= than["ttft_p99_s"] and t[3]["over_slo"] <= than["over_slo"]
        )

    peak_fleet = statics[1.0]  # sized for the peak minute at one replica's full throughput
    fit = [t for t in tried if no_worse(t, peak_fleet)]
    share, chosen, chosen_run, chosen_summary = min(
        fit or tried, key=lambda t: (t[3]["replica_minutes"], t[3]["over_slo"])
    )
    per_share: dict[str, dict[str, Any]] = {}
    for sh in SHARES:  # each target against a static fleet sized for the peak at that load
        mine = [t for t in tried if t[0] == sh and no_worse(t, statics[sh])]
        best = min(mine, key=lambda t: t[3]["replica_minutes"]) if mine else None
        per_share[str(sh)] = {
            "static": statics[sh],
            "autoscaled": best[3] if best else None,
            "settings": {k: best[1].model_dump()[k] for k in keys} if best else None,
            "saved_share": round(saved(best, statics[sh]), 3) if best else None,
        }
    result = {
        "trace": str(args.trace),
        "arrivals": len(arrivals),
        "minutes": round(arrivals[-1].at / 60, 1),
        "peak_output_tokens_per_s": round(peak, 1),
        "capacity": capacity.__dict__,
        "slo_ttft_s": args.slo_ttft,
        "warmup_minutes": args.warmup_minutes,
        "static": peak_fleet,
        "autoscaled": chosen_summary,
        "chosen": chosen.model_dump(),
        "meets_static": bool(fit),
        "saved_share": round(saved((share, chosen, chosen_run, chosen_summary), peak_fleet), 3),
        "per_share": per_share,
        "candidates": [
            {k: s.model_dump()[k] for k in keys} | r | {"share": sh} for sh, s, _, r in tried
        ],
        "load_average": os.getloadavg(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("candidates", "per_share")}, indent=2
        )
    )
    print("\nper target share, against a static fleet sized for the peak at that load:")
    for name, row in per_share.items():
        st, au = row["static"], row["autoscaled"]
        if au is None:
            print(f"  {name}: none no worse than {st['replicas']} static replicas")
            continue
        print(
            f"  {name}: {au['replica_minutes']} vs {st['replica_minutes']} replica-min "
            f"({row['saved_share']:+.1%}), p99 TTFT {au['ttft_p99_s']} vs {st['ttft_p99_s']} s, "
            f"over SLO {au['over_slo']} vs {st['over_slo']}; {row['settings']}"
        )
    print("\nautoscaled, per minute:")
    rows = minute_rows(chosen_run.arrivals, chosen_run.ttft, chosen_run.e2e, args.slo_ttft)
    print(render_minutes(rows))


if __name__ == "__main__":
    main()
