"""A client trying to steer a canary's verdict (issue 13, item 6), against a real server.

API keys are on. The candidate fails about half of what an honest app sends (texts with a
word it cannot embed). A second app, which happens to land in the canary, floods it with
easy texts to dilute the error rate past the threshold, and a third app, which does not,
sends ``X-Canary-Key`` values chosen to land in the canary. The third app's requests all
stay on the active version (the app, not the header, picks the side), the flood counts for
no more than half of the evidence, and the candidate is rolled back by itself.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.canary.routing import canary_bucket
from serving.control.rollout import promote
from testbed.clinc import clinc_texts
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.traffic import Traffic, count, varied_classify
from testbed.versions import DEPLOYMENT, SMOKE_SAFE_VOCAB, make_version, texts_beyond

pytestmark = [pytest.mark.integration, pytest.mark.faults]
PERCENT = 50.0


def _get(port: int, path: str, key: str | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"authorization": f"Bearer {key}"} if key else {})
    response = conn.getresponse()
    response.read()
    return response.status


def _named(prefix: str, inside: bool) -> str:
    """An app or key name on the chosen side of the split (names are what admins choose)."""
    return next(
        f"{prefix}-{i}" for i in range(1000) if (canary_bucket(f"{prefix}-{i}") < PERCENT) == inside
    )


def test_a_client_cannot_steer_the_canary_verdict(
    registry: Registry,
    tokenizer: Any,
    fault_table: FaultTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_SERVE_HOST", "0.0.0.0")  # keys required, as beyond loopback
    settings = Settings()
    v1 = make_version(registry, settings, tokenizer, 0)
    promote(registry, v1, canary_percent=0, timeout=5)
    bad = make_version(
        registry, settings, tokenizer, 9, vocab=SMOKE_SAFE_VOCAB,
        serving={"rollback": {"min_requests": 30, "max_error_rate": 0.05}},
    )  # fmt: skip
    keys = {
        role: registry.create_api_key(_named(role, inside), [DEPLOYMENT])[1]
        for role, inside in (("honest", True), ("flood", True), ("steer", False))
    }
    rare = set(texts_beyond(tokenizer))
    easy = [t for t in clinc_texts() if t not in rare]
    mixed = [t for pair in zip(sorted(rare), easy, strict=False) for t in pair]
    in_canary = _named("key", True)

    def auth(role: str, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {keys[role]}", **extra}

    with (
        running_server(settings) as server,
        Traffic(server.port, 2, varied_classify(mixed, auth("honest"))) as honest,
        Traffic(server.port, 8, varied_classify(easy, auth("flood"))) as flood,
        Traffic(
            server.port, 2, varied_classify(easy, auth("steer", **{"x-canary-key": in_canary}))
        ) as steer,
    ):
        time.sleep(1.0)
        views = {path: _get(server.port, path, None) for path in ("/v1/status", "/metrics")}
        views_keyed = {path: _get(server.port, path, keys["honest"]) for path in views}
        start = time.monotonic()
        outcome = promote(registry, bad, canary_percent=PERCENT, bake_seconds=20, timeout=30)
        end = time.monotonic()

    assert views == {"/v1/status": 401, "/metrics": 401}, "the views need a key beyond loopback"
    assert views_keyed == {"/v1/status": 200, "/metrics": 200}
    assert outcome.rolled_back, outcome.rollout
    assert registry.alias(DEPLOYMENT, "production") == v1
    evidence = outcome.rollout.details["canary"]
    assert evidence["error_rate"] > 0.05, evidence
    assert {a.role for a in steer.answers if a.status == 200} == {"active"}, "the header steered"
    assert any(a.role == "canary" for a in flood.answers), "the flood app reached the canary"
    answers = [a for t in (honest, flood, steer) for a in t.between(start, end)]
    row = fault_table.add(
        "canary-steering client",
        "keys on; one app floods the canary with easy texts, another sends X-Canary-Key",
        answers,
        judged=lambda a: a.status == 500 and a.version == bad and a.role == "canary",
        verdict=outcome.notes[0] if outcome.notes else outcome.rollout.reason,
    )
    assert row["lost"] == 0
    assert count(steer.answers).ok == len(steer.answers)
