"""The benchmark harness: interleaved runs, medians and the ratio it reports."""

from __future__ import annotations

import time

import pytest

from bench.harness import compare

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


def test_mfu_accounting_reproduces_the_issue_reference() -> None:
    """An H100 ran the plain compiled loop at 4,133 samples/s, which issue 17 puts at 28% MFU
    (BERT-base, seq 128): the suite's FLOP count must say the same of that figure."""
    from transformers import BertConfig

    from bench.gpu_suite import _mfu, bert_flops_per_sample, peak_flops

    flops = bert_flops_per_sample(BertConfig(), seq=128)
    assert flops == pytest.approx(67.5e9, rel=0.01)
    mfu = _mfu(4133, flops, peak_flops(989.0))
    assert mfu is not None and round(mfu, 2) == 0.28
