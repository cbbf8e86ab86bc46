"""Workers that die, and models that must not serve (issue 13, items 3 and 7).

Two workers serve v1 under load. One is killed with ``kill -9``: BentoML starts another,
which loads v1 from the registry and serves; the other worker answers meanwhile. Then one
bit of v1's weights flips on disk and a worker is killed again: its replacement finds the
folder no longer matches the SHA-256 registered with v1 and refuses it (up, not ready, 503
with Retry-After); the surviving worker still holds v1 as loaded before the flip. A
candidate whose ONNX export cannot run is refused before any traffic moves. Clients retry
once when a connection drops (the requests are idempotent) and wait up to 30 s: a worker
that BentoML is still starting accepts connections before it can answer them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.model_folder.hashing import file_sha256
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.canary.bake import live_workers
from serving.control.errors import PromotionRefused
from serving.control.packaging import package_version
from serving.control.rollout import promote
from serving.worker.loading import model_folder
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.traffic import Traffic
from testbed.versions import DEPLOYMENT, make_version

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _worker_pids(registry: Registry, count: int = 2, timeout: float = 60.0) -> set[int]:
    """The pids of the live workers serving a version, by their heartbeats, once ``count``
    of them do."""
    deadline = time.monotonic() + timeout
    while True:
        pids = {w.pid for w in live_workers(registry, DEPLOYMENT) if w.active_version}
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


def _refusing(registry: Registry, version: str, timeout: float = 90.0) -> list[Any]:
    """Live workers that refused ``version`` (waits until one reports it, or times out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beats = live_workers(registry, DEPLOYMENT)
        if any(version in w.failures for w in beats):
            return beats
        time.sleep(0.3)
    return live_workers(registry, DEPLOYMENT)


def _lost(answers: list[Any]) -> list[tuple[int, bool, float, bytes]]:
    return [
        (a.status, a.retried, round(a.seconds, 2), a.body[:80])
        for a in answers
        if a.status not in (200, 503)
    ]


def _flip_one_bit(path: Path) -> None:
    """Rewrite the file with one bit changed: truncated, then written again. A worker that
    read its weights from a mapping of this file died of SIGBUS here (all answers were then
    503s from replacements refusing the folder); it must hold its own copy."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_worker_kill9_bit_flip_and_corrupt_candidate(
    registry: Registry, settings: Settings, tokenizer: Any, fault_table: FaultTable
) -> None:
    v1 = make_version(registry, settings, tokenizer, 0)
    promote(registry, v1, canary_percent=0, timeout=5)
    v2 = make_version(registry, settings, tokenizer, 1, serving={"backend": "onnx"})
    package_version(registry, v2, build_bento=False)
    onnx = model_folder(registry.resolve(v2))
    assert onnx is not None
    (onnx / "model.onnx").write_bytes(b"\x08not an onnx graph" * 64)  # as its export recorded
    report = json.loads((onnx / "onnx.json").read_text())
    (onnx / "onnx.json").write_text(
        json.dumps({**report, "sha256": file_sha256(onnx / "model.onnx")})
    )

    with running_server(settings, workers=2) as server:
        first = _worker_pids(registry)
        assert len(first) == 2
        with Traffic(server.port, 4, timeout=30.0) as traffic:
            time.sleep(1.0)
            killed = time.monotonic()
            os.kill(min(first), signal.SIGKILL)
            time.sleep(4.0)  # its heartbeat goes stale; BentoML starts another
            after_kill = _worker_pids(registry)
            respawned = time.monotonic()

            refused = time.monotonic()
            with pytest.raises(PromotionRefused, match="nothing moved"):
                promote(registry, v2, canary_percent=0, timeout=10)
            time.sleep(3.0)  # traffic on after the refusal (busy cores: a request may take 1 s)
            refused_end = time.monotonic()

            _flip_one_bit(Path(registry.resolve(v1).artifact_uri or "") / "model.safetensors")
            flipped = time.monotonic()
            os.kill(max(after_kill - first), signal.SIGKILL)  # the survivor keeps v1 in memory
            beats = _refusing(registry, v1)
            time.sleep(2.0)
            flipped_end = time.monotonic()

    assert len(after_kill) == 2 and after_kill != first, "a new worker replaced the killed one"
    row = fault_table.add(
        "worker kill -9", "kill -9 of one of two workers; BentoML starts another",
        traffic.between(killed, respawned),
        max_wait_s=round(max(a.seconds for a in traffic.between(killed, respawned)), 2),
    )  # fmt: skip
    assert row["lost"] == 0 and row["ok"] > 0
    row = fault_table.add(
        "corrupt candidate", "promote a version whose ONNX export cannot run",
        traffic.between(refused, refused_end),
    )  # fmt: skip
    assert row["lost"] == 0 and row["ok"] > 0, _lost(traffic.between(refused, refused_end))
    assert registry.alias(DEPLOYMENT, "production") == v1
    during = traffic.between(flipped, flipped_end)
    row = fault_table.add(
        "bit-flipped serving model",
        "one bit of the serving version's weights flipped, then a worker killed: the new one "
        "refuses the folder",
        during,
        max_wait_s=round(max(a.seconds for a in during), 2),
    )
    lost = [
        (a.status, a.retried, round(a.seconds, 2)) for a in during if a.status not in (200, 503)
    ]
    statuses = sorted((a.status, a.retried) for a in during)  # says why when none was ok
    assert row["lost"] == 0 and row["ok"] > 0, (len(during), statuses[:20], lost[:10])
    assert {a.version for a in during if a.status == 200} == {v1}
    refusing = [w for w in beats if w.active_version is None and v1 in w.failures]
    assert refusing, f"the replacement worker did not refuse the flipped folder: {beats}"
    assert "sha" in refusing[0].failures[v1].lower()
