"""The benchmarks' harness: interleaved runs, medians and the ratio it reports."""

from __future__ import annotations

import time

import pytest

from testbed.harness import compare

pytestmark = pytest.mark.unit


def test_ratio_reflects_throughput_and_runs_interleave() -> None:
    calls: list[str] = []

    def fast() -> float:
        calls.append("fast")
        time.sleep(0.001)
        return 10

    def slow() -> float:
        calls.append("slow")
        time.sleep(0.02)
        return 10

    result = compare("t", ("fast", fast), ("slow", slow), repeats=4, warmup=1)
    assert calls == ["fast", "slow", "fast", "slow", "slow", "fast", "fast", "slow", "slow", "fast"]
    assert len(result.arm.seconds) == len(result.baseline.seconds) == 4
    assert result.ratio > 1.5  # 20x less time for the same work
    assert result.as_dict()["ratio"] == result.ratio


def test_work_counts_enter_the_throughput() -> None:
    result = compare("t", ("double", lambda: 20.0), ("single", lambda: 10.0), repeats=3, warmup=0)
    assert result.arm.median_throughput > result.baseline.median_throughput
