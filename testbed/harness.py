"""Run an arm and its baseline interleaved in one process; report medians and the ratio.

Interleaving (A, B, A, B, ...) spreads drift of the machine (thermal, other load)
evenly over both, so the ratio is fairer than two back-to-back runs.
Each callable returns the amount of work it did (rows, samples, requests), so the
figure is a throughput: work per second. ``ratio`` = arm throughput / baseline throughput.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

__all__ = ["Comparison", "Measurement", "compare", "print_comparison"]

Work = Callable[[], float]


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: list[float]
    work: list[float]

    @property
    def throughputs(self) -> list[float]:
        return [w / s for w, s in zip(self.work, self.seconds, strict=True) if s > 0]

    @property
    def median_throughput(self) -> float:
        return statistics.median(self.throughputs)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class Comparison:
    title: str
    unit: str
    arm: Measurement
    baseline: Measurement
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.arm.median_throughput / self.baseline.median_throughput

    def as_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "unit": self.unit,
            "arm": {**asdict(self.arm), "median_throughput": self.arm.median_throughput},
            "baseline": {
                **asdict(self.baseline),
                "median_throughput": self.baseline.median_throughput,
            },
            "ratio": self.ratio,
            "machine": {"python": platform.python_version(), "cpu": platform.processor()},
            "notes": self.notes,
        }


def _timed(run: Work) -> tuple[float, float]:
    start = time.perf_counter()
    work = run()
    return time.perf_counter() - start, float(work)


def compare(
    title: str,
    arm: tuple[str, Work],
    baseline: tuple[str, Work],
    *,
    repeats: int = 5,
    warmup: int = 1,
    unit: str = "items/s",
) -> Comparison:
    """Warm both up, then alternate them ``repeats`` times, baseline first on odd rounds."""
    (arm_name, arm_run), (base_name, base_run) = arm, baseline
    for _ in range(warmup):
        arm_run()
        base_run()
    arm_times: list[tuple[float, float]] = []
    base_times: list[tuple[float, float]] = []
    for round_index in range(repeats):
        order = [(arm_run, arm_times), (base_run, base_times)]
        if round_index % 2:
            order.reverse()
        for run, sink in order:
            sink.append(_timed(run))
    return Comparison(
        title=title,
        unit=unit,
        arm=Measurement(arm_name, [s for s, _ in arm_times], [w for _, w in arm_times]),
        baseline=Measurement(base_name, [s for s, _ in base_times], [w for _, w in base_times]),
    )


def print_comparison(result: Comparison, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    print(f"## {result.title}")
    for m in (result.arm, result.baseline):
        print(
            f"{m.name:>28}: median {m.median_throughput:,.1f} {result.unit} "
            f"({m.median_seconds:.3f} s per run, {len(m.seconds)} runs)"
        )
    print(f"{'ratio (arm / baseline)':>28}: {result.ratio:.2f}x")
    for key, value in result.notes.items():
        print(f"{key:>28}: {value}")
