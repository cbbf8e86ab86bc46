"""Real `bentoml serve` processes on 127.0.0.1 following a real registry, real tiny models.

Promotion under load with two workers, rollback to the hot standby, a corrupted or deleted
candidate refused while the old keeps serving, a candidate that fails real traffic during a
canary rolled back by itself, and kill -9 in the middle of a promotion.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.canary.routing import canary_bucket
from serving.control.errors import PromotionRefused
from serving.control.rollout import promote, rollback
from testbed.clinc import clinc_texts
from testbed.live_server import classify, running_server, wait_ready
from testbed.traffic import Load
from testbed.versions import DEPLOYMENT, SMOKE_SAFE_VOCAB, make_version, texts_beyond

pytestmark = pytest.mark.integration


def _first(registry: Registry, settings: Settings, tokenizer: Any, n: int) -> list[str]:
    versions = [make_version(registry, settings, tokenizer, seed) for seed in range(n)]
    promote(registry, versions[0], canary_percent=0, timeout=5)
    return versions


def test_promotion_and_rollback_under_load_lose_no_request(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    v1, v2 = _first(registry, settings, tokenizer, 2)
    with running_server(settings, workers=2) as server, Load(server.port, clients=4) as load:
        time.sleep(1.0)
        outcome = promote(registry, v2, canary_percent=0, timeout=30)
        switched = time.monotonic()
        assert outcome.rollout.state == RolloutState.COMPLETED
        assert len(outcome.workers) == 2, outcome.workers
        time.sleep(0.5)
        back = rollback(registry, DEPLOYMENT, timeout=10)
        rolled = time.monotonic()
        assert back.rollout.version == v1
        assert back.converge_seconds < 1.0, "v1 is the hot standby: a pointer swap"
        time.sleep(0.5)
    assert load.results, "the clients sent requests"
    assert load.failures() == []
    assert all(version in (v1, v2) for _, _, _, version, _ in load.results)
    # by the time each request was sent (answer time less latency): most reach the model now
    after_promote = [
        r for r in load.results if switched < r[0] - r[4] < rolled - back.converge_seconds - 0.05
    ]
    assert after_promote and {r[3] for r in after_promote} == {v2}
    assert {r[3] for r in load.results if r[0] - r[4] > rolled} == {v1}
    assert registry.alias(DEPLOYMENT, "production") == v1


@pytest.mark.parametrize("fault", ["corrupted", "deleted"])
def test_broken_candidate_is_refused_while_the_old_keeps_serving(
    registry: Registry, settings: Settings, tokenizer: Any, fault: str
) -> None:
    v1, v2 = _first(registry, settings, tokenizer, 2)
    folder = Path(registry.resolve(v2).artifact_uri or "")
    if fault == "corrupted":
        (folder / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
    else:
        shutil.rmtree(folder)
    with running_server(settings) as server, Load(server.port, clients=2) as load:
        with pytest.raises(PromotionRefused, match="refused"):
            promote(registry, v2, canary_percent=0, timeout=10)
        time.sleep(0.5)
    assert registry.alias(DEPLOYMENT, "production") == v1
    assert load.failures() == [] and {r[3] for r in load.results} == {v1}
    refused = [a for a in registry.audit_log(DEPLOYMENT) if a.action == "promotion.refused"]
    assert refused and refused[0].version == v2


def test_canary_that_fails_real_traffic_is_rolled_back_by_itself(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    (v1,) = _first(registry, settings, tokenizer, 1)
    # Passes its smoke set, but cannot embed the rarer words of half the texts clients send.
    bad = make_version(registry, settings, tokenizer, 9, vocab=SMOKE_SAFE_VOCAB)
    rare = texts_beyond(tokenizer)
    texts = [t for pair in zip(rare, clinc_texts()[:2000], strict=False) for t in pair]
    percent = 30.0
    with running_server(settings) as server, Load(server.port, clients=8, texts=texts) as load:
        outcome = promote(registry, bad, canary_percent=percent, bake_seconds=60, timeout=30)
        time.sleep(0.3)
    assert outcome.rolled_back, outcome.rollout
    assert registry.alias(DEPLOYMENT, "production") == v1
    outside = [r for r in load.results if canary_bucket(r[1]) >= percent]
    inside = [r for r in load.results if canary_bucket(r[1]) < percent]
    assert outside and inside, "the client keys land on both sides of the split"
    assert [r for r in outside if r[2] != 200] == []
    assert all(r[3] == bad for r in load.failures())
    entry = next(a for a in registry.audit_log(DEPLOYMENT) if a.action == "promote.rolled_back")
    assert "error rate" in entry.reason and "max_error_rate" in entry.reason
    assert entry.details["canary"]["error_rate"] > 0.05


def test_server_killed_mid_promotion_restarts_consistent_with_the_registry(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    v1, v2 = _first(registry, settings, tokenizer, 2)
    with running_server(settings) as server:
        assert classify(server.port)[1] == v1
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["outcome"] = promote(registry, v2, canary_percent=0, timeout=15)
            except Exception as exc:  # reported below
                result["error"] = exc

        promoting = threading.Thread(target=run)
        promoting.start()
        deadline = time.monotonic() + 30
        while registry.alias(DEPLOYMENT, "production") != v2 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill9()  # kill -9 the whole server while the workers swap
        promoting.join(timeout=30)
        assert not promoting.is_alive()
        production = registry.alias(DEPLOYMENT, "production")
        assert production == v2
    with running_server(settings) as again:
        wait_ready(again.port)
        statuses = {classify(again.port) for _ in range(5)}
        assert statuses == {(200, production)}
        live = [w for w in registry.workers(DEPLOYMENT) if w.active_version == production]
        assert live, "the restarted worker reports the version the registry names"


def test_every_worker_holds_the_candidate_before_the_alias_moves(
    registry: Registry, settings: Settings, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move to a new version is a pointer swap on every worker: each loaded and checked
    it (the ``prewarm`` alias) before production moved, and gives it back after."""
    v1, v2 = _first(registry, settings, tokenizer, 2)
    at_move: list[dict[str, Any]] = []
    start_rollout = registry.start_rollout

    def watched(*args: Any, **kwargs: Any) -> Any:
        workers = registry.workers(DEPLOYMENT)
        at_move.extend(
            {"prewarmed": w.prewarmed_version, "active": w.active_version} for w in workers
        )
        return start_rollout(*args, **kwargs)

    monkeypatch.setattr(registry, "start_rollout", watched)
    with running_server(settings, workers=2) as server, Load(server.port, clients=2) as load:
        time.sleep(0.5)
        outcome = promote(registry, v2, canary_percent=0, timeout=30)
        assert outcome.rollout.state == RolloutState.COMPLETED and len(outcome.workers) == 2
        assert at_move == [{"prewarmed": v2, "active": v1}] * 2, at_move
        assert outcome.rollout.details["prewarm_seconds"] > 0
        assert registry.alias(DEPLOYMENT, "prewarm") is None
        outcome = promote(registry, v1, canary_percent=0, timeout=30)  # v1: the hot standby
        assert at_move[2:] == [{"prewarmed": None, "active": v2}] * 2, at_move
    assert load.results and load.failures() == []
    assert {r[3] for r in load.results} == {v1, v2}
