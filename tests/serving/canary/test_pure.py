"""The pure parts of serving: figures, the canary judge, the split, the desired state, checks."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.registry import RolloutRecord, RolloutState
from serving.api.validation import RequestError, check_texts
from serving.canary import (
    CanaryThresholds,
    Decision,
    VersionStats,
    canary_bucket,
    desired_state,
    judge_canary,
    merge_stats,
    routes_to_canary,
)
from serving.engine.batcher import Batcher

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = CanaryThresholds(max_error_rate=0.05, max_p99_latency_ms=200, min_requests=20)


def _stats(requests: int, errors: int, latency_ms: float = 10) -> VersionStats:
    stats = VersionStats()
    for i in range(requests):
        stats.observe(latency_ms, failed=i < errors)
    return stats


def test_stats_merge_across_workers_and_read_p99() -> None:
    merged = merge_stats([_stats(90, 1, 8).as_dict(), _stats(10, 2, 400).as_dict()])
    assert (merged.requests, merged.errors) == (100, 3)
    assert merged.percentile_ms(50) == 10
    assert merged.percentile_ms(99) == 500
    assert VersionStats.from_dict({"buckets": [1]}).requests == 0


def test_judge_rolls_back_on_error_rate_once_enough_requests() -> None:
    later = NOW + timedelta(seconds=60)
    assert judge_canary(_stats(10, 10), LIMITS, NOW, later).decision == Decision.WAIT
    verdict = judge_canary(_stats(40, 4), LIMITS, NOW, later)
    assert verdict.decision == Decision.ROLL_BACK
    assert "error rate 10.0%" in verdict.reason and verdict.figures["errors"] == 4


def test_judge_rolls_back_on_latency_and_on_no_evidence() -> None:
    slow = judge_canary(_stats(30, 0, 900), LIMITS, NOW, NOW + timedelta(seconds=5))
    assert slow.decision == Decision.ROLL_BACK and "p99 latency" in slow.reason
    quiet = judge_canary(_stats(3, 0), LIMITS, NOW, NOW)
    assert quiet.decision == Decision.ROLL_BACK and "fewer than min_requests" in quiet.reason


def test_judge_completes_a_clean_canary_at_the_deadline() -> None:
    assert judge_canary(_stats(30, 1), LIMITS, NOW, NOW + timedelta(seconds=1)).decision == "wait"
    assert judge_canary(_stats(30, 1), LIMITS, NOW, NOW).decision == Decision.COMPLETE


def test_canary_split_is_sticky_per_client_and_near_the_percent() -> None:
    assert routes_to_canary(0, "a") is False and routes_to_canary(100, "a") is True
    assert routes_to_canary(30, "client-7") == (canary_bucket("client-7") < 30)
    rng = random.Random(1)
    share = sum(routes_to_canary(25, None, rng) for _ in range(4000)) / 4000
    assert 0.22 < share < 0.28


def _rollout(state: RolloutState) -> RolloutRecord:
    return RolloutRecord(
        1, "d", "d:v2", "d:v1", "promote", 20, 30, state, NOW, NOW, None, "me", "", {}
    )


def test_desired_state_splits_only_while_baking() -> None:
    baking = desired_state("d:v2", _rollout(RolloutState.BAKING))
    assert (baking.active, baking.canary, baking.canary_percent) == ("d:v1", "d:v2", 20)
    assert desired_state("d:v2", _rollout(RolloutState.COMPLETED)).canary is None
    reverted = desired_state("d:v1", _rollout(RolloutState.ROLLED_BACK))
    assert (reverted.active, reverted.canary) == ("d:v1", None)
    assert desired_state(None, None).active is None


@pytest.mark.parametrize(
    ("text", "texts", "top_k", "reason"),
    [
        (None, [], 1, "empty"),
        (None, None, 1, "exactly one"),
        ("a", ["b"], 1, "exactly one"),
        (None, ["ok", " "], 1, "blank"),
        (None, ["x" * 11], 1, "characters"),
        (None, ["a"] * 4, 1, "at most 3"),
        ("a", None, 0, "top_k"),
    ],
)
def test_malformed_requests_are_422_with_a_reason(
    text: str | None, texts: list[str] | None, top_k: int, reason: str
) -> None:
    with pytest.raises(RequestError, match=reason) as caught:
        check_texts(text, texts, top_k, max_texts=3, max_chars=10)
    assert caught.value.status == 422


def test_batcher_merges_queued_requests_and_splits_answers() -> None:
    calls: list[int] = []

    def forward(model: str, texts: list[str], top_k: int) -> list[dict[str, object]]:
        calls.append(len(texts))
        return [
            {"label": f"{model}:{t}", "score": 1.0, "top_k": [{"l": i} for i in range(top_k)]}
            for t in texts
        ]

    batcher = Batcher(forward, max_batch_size=64)

    async def many() -> list[list[dict[str, object]]]:
        jobs = [batcher.submit("m", "m", [f"t{i}", f"u{i}"], 1 + i % 2) for i in range(20)]
        return list(await asyncio.gather(*jobs))

    answers = asyncio.run(many())
    assert [a[0]["label"] for a in answers] == [f"m:t{i}" for i in range(20)]
    assert [len(a[1]["top_k"]) for a in answers] == [1 + i % 2 for i in range(20)]  # type: ignore[arg-type]
    assert sum(calls) == 40 and len(calls) < 20


def test_batcher_passes_follow_each_versions_batching_spec() -> None:
    """A version with batching off (limit 1) answers one request per pass; limit 4 caps merges."""
    import threading

    calls: list[tuple[str, int]] = []
    gate = threading.Event()

    def forward(model: str, texts: list[str], top_k: int) -> list[dict[str, object]]:
        gate.wait(5)  # hold the first pass so that the rest queue behind it
        calls.append((model, len(texts)))
        return [{"label": t, "score": 1.0, "top_k": []} for t in texts]

    batcher = Batcher(forward, max_batch_size=64)

    async def many(model: str, limit: int) -> None:
        jobs = [batcher.submit(model, model, [f"t{i}"], 1, limit) for i in range(9)]
        await asyncio.sleep(0.2)
        gate.set()
        await asyncio.gather(*jobs)

    asyncio.run(many("off", 1))
    assert [n for _, n in calls] == [1] * 9
    calls.clear()
    gate.clear()
    asyncio.run(many("four", 4))
    assert sum(n for _, n in calls) == 9 and max(n for _, n in calls) == 4
