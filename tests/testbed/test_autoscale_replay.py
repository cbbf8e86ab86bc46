"""`bench/autoscale_replay.py` on the shipped 10-minute slice of the Azure trace (CI), and the
fleet simulation under it on hand-made arrivals."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.azure_trace import SLICE, Arrival
from testbed.fleet import Capacity, View, replay
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.unit

ONE_STREAM = Capacity(10.0, 10.0, 1, 100.0, cold_start_s=5.0)


def test_one_replica_serves_requests_in_turn() -> None:
    # two requests of 10 tokens at once on one slot: the second waits for the first
    arrivals = [Arrival(0.0, 0, 10), Arrival(0.0, 0, 10)]
    run = replay(arrivals, ONE_STREAM, lambda view: 1, 1, dt=0.1)
    assert run.e2e[0] == pytest.approx(1.0, abs=0.11)
    assert run.ttft[1] == pytest.approx(1.0, abs=0.11)  # queued a whole answer
    assert run.e2e[1] == pytest.approx(2.0, abs=0.11)


def test_a_new_replica_takes_traffic_only_after_its_cold_start() -> None:
    arrivals = [Arrival(t / 2, 0, 10) for t in range(40)]  # twice what one replica serves
    seen: list[View] = []

    def scaler(view: View) -> int:
        seen.append(view)
        return 2

    run = replay(arrivals, ONE_STREAM, scaler, 1, dt=0.5, sync_s=5.0)
    assert run.replicas[0] == (4.5, 2)
    assert seen[0].waiting > 0  # a queue built on one replica
    assert all(e < math.inf for e in run.e2e)
    # one answer a second until the second replica is ready at 4.5 + 5 s, then two
    starts = [a.at + t for a, t in zip(arrivals, run.ttft, strict=True)]
    assert sum(s < 9.5 for s in starts) == 10
    assert sum(8.5 <= s < 9.5 for s in starts) == 1
    assert sum(9.5 <= s < 10.5 for s in starts) == 2
    # one replica until 4.5 s, two from then to the last arrival (19.5 s)
    assert run.replica_seconds == pytest.approx(4.5 + 2 * 15.0, abs=1.0)


def test_the_replay_runs_on_the_shipped_slice(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.autoscale_replay", "--trace", str(SLICE), "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["arrivals"] == 2867
    static, autoscaled = result["static"], result["autoscaled"]
    assert static["answered"] == static["requests"] == autoscaled["answered"] > 2000
    # the chosen settings are no worse than the fleet sized for the peak
    assert result["meets_static"]
    assert autoscaled["ttft_p99_s"] <= static["ttft_p99_s"]
    assert autoscaled["over_slo"] <= static["over_slo"]
    assert result["chosen"]["max_replicas"] >= static["replicas"]
    # with the same headroom per replica, scaling saves replica-minutes somewhere
    savings = [row["saved_share"] for row in result["per_share"].values() if row["autoscaled"]]
    assert savings and max(savings) > 0, result["per_share"]
    assert "| minute | requests |" in completed.stdout
