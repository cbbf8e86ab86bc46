"""Promotion, rollback and canary of LoRA versions under chat load lose no request.

A real `bentoml serve` worker follows a deployment whose versions are adapters on one tiny
random Llama. Three closed-loop clients send varied chat completions (greedy, some streamed)
while v2 is promoted (no canary), v1 comes back from hot standby, and v3 bakes as a 50%
canary: every answer is counted, none fails, and after each move every request sent a
bounded time after the alias moved is answered by the new version. The worker holds one
base and one engine, with the adapters of the versions it keeps.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.control.rollout import promote, rollback
from serving.worker.controller import RELEASE_GRACE_SECONDS
from testbed.adapter_traffic import (
    alias_to_full,
    answered_version,
    failed,
    make_adapter,
    monotonic_of,
    register_adapter,
    varied_chat,
)
from testbed.live_server import running_server
from testbed.tiny_models import write_tiny_llama
from testbed.traffic import Traffic
from testbed.versions import DEPLOYMENT

pytestmark = pytest.mark.integration
MOVE_BOUND_S = 3.0  # generous on 2 shared cores; bench/adapter_promotion.py reports the figure


def test_adapter_promotion_rollback_and_canary_under_chat_load_lose_nothing(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    base = write_tiny_llama(tmp_path / "base", smollm2_tokenizer_dir)
    v1, v2, v3 = (
        register_adapter(registry, settings, base, make_adapter(base, tmp_path / f"a{s}", s))
        for s in (1, 2, 3)
    )
    promote(registry, v1, canary_percent=0, timeout=10)
    with (
        running_server(settings) as server,
        Traffic(server.port, clients=3, request=varied_chat(), timeout=30) as traffic,
    ):
        time.sleep(2.0)
        out = promote(registry, v2, canary_percent=0, timeout=30)
        assert out.rollout.state == RolloutState.COMPLETED
        promoted = monotonic_of(out.rollout.started_at)
        # v2 serves for a while past the bound, so there are answers to check it alone gave
        time.sleep(max(1.5, promoted + MOVE_BOUND_S + 1.5 - time.monotonic()))
        status = server.status()
        back = rollback(registry, DEPLOYMENT, timeout=30)
        assert back.rollout.version == v1
        rolled = monotonic_of(back.rollout.started_at)
        time.sleep(1.5)
        canary = promote(registry, v3, canary_percent=50, bake_seconds=3, timeout=30)
        canary_start = monotonic_of(canary.rollout.started_at)
        canary_end = time.monotonic()
        # v2 left the routing: its adapter goes once the release grace has passed
        deadline = canary_end + RELEASE_GRACE_SECONDS + 10
        after = server.status()
        while time.monotonic() < deadline and len(after["loaded"][0]["engine"]["adapters"]) > 2:
            time.sleep(0.5)
            after = server.status()

    answers = list(traffic.answers)
    assert len(answers) > 30, "the clients kept sending"
    assert [a for a in answers if failed(a)] == [], "no request failed in any move"
    assert sum(1 for a in answers if a.retried) == 0
    assert {answered_version(a) for a in answers} <= {v1, v2, v3}
    streamed = [a for a in answers if a.body.startswith(b"data:")]
    assert streamed and len(streamed) < len(answers), "both plain and streamed answers"

    # Promote: v1 until the alias moved, then v2 only (within the bound), until the rollback.
    before_rollback = [a for a in answers if a.sent_at < rolled]
    assert alias_to_full(before_rollback, promoted, v2) < MOVE_BOUND_S
    moved_on = [a for a in before_rollback if a.sent_at > promoted + MOVE_BOUND_S]
    assert moved_on and {a.version for a in moved_on} == {v2}
    # Rollback: v1 is the hot standby, a pointer swap.
    before_canary = [a for a in answers if a.sent_at < canary_start]
    assert alias_to_full(before_canary, rolled, v1) < MOVE_BOUND_S
    assert back.converge_seconds < 1.0, "v1 was the hot standby"
    # Canary: both versions answered while it baked, then v3 took all.
    baking = [a for a in answers if canary_start + 0.5 < a.sent_at < canary_end - 0.5]
    assert {a.version for a in baking} == {v1, v3}, "both sides of a 50% canary answered"
    assert canary.rollout.state == RolloutState.COMPLETED, canary.rollout
    assert alias_to_full(answers, canary_end, v3) < MOVE_BOUND_S

    # One base, one engine, the adapters of the versions held (active v2, standby v1).
    assert len(status["bases"]) == 1
    (held,) = status["bases"].values()
    engines = {v["engine"]["name"] for v in status["loaded"]}
    assert engines == {held["engine"]} and len(held["adapters"]) == 2
    roles = {v["version"]: v["role"] for v in status["loaded"]}
    assert roles == {v2: "active", v1: "standby"}
    on_engine = {v["adapter"] for v in status["loaded"]}
    assert on_engine == set(held["adapters"]) == set(status["loaded"][0]["engine"]["adapters"])
    # After the canary: v3 active, v1 standby; v2's adapter deleted from the shared model.
    (held,) = after["bases"].values()
    assert {v["version"]: v["role"] for v in after["loaded"]} == {v3: "active", v1: "standby"}
    assert set(after["loaded"][0]["engine"]["adapters"]) == {v["adapter"] for v in after["loaded"]}
    assert len(held["adapters"]) == 2
