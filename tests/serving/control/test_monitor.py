"""The drift monitor: profiles merge by adding, check_drift with plain values, and a real
`bentoml serve` whose shifted traffic makes `conveyor monitor` emit conveyor.drift.detected
to a Prefect server and write the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pytest

from conveyor.errors import ExitCode
from conveyor.registry import Registry, WorkerRecord
from conveyor.settings import Settings
from data_checks import PROFILE_KEY, data_profile
from data_checks.stats import length_histogram
from serving.control.monitor import MonitorThresholds, check_drift, recent_profile
from serving.worker.profile import InputProfile, RollingProfile, merge_profiles, profile_of
from testbed.live_server import classify
from testbed.paths import REPO_ROOT
from testbed.versions import DEPLOYMENT, LABELS, LONG_TEXT, make_version

SHORT = ("set a timer", "send money to bob", "translate hello", "define apple")
THRESHOLDS = MonitorThresholds(min_requests=40)


def training_frame(rows: int = 400) -> pd.DataFrame:
    """Short texts, the four labels in equal shares."""
    return pd.DataFrame(
        {"text": [SHORT[i % 4] for i in range(rows)], "label": [LABELS[i % 4] for i in range(rows)]}
    )


def live(texts: list[str], labels: list[str], score: float = 0.9) -> InputProfile:
    results = [{"label": label, "score": score} for label in labels]
    ids = [[1000] * max(1, len(text) // 4) for text in texts]
    return profile_of(texts, results, ids, unk_token_id=100)


# -- profiles ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_length_bins_are_the_training_profiles() -> None:
    lengths = [0, 7, 8, 9, 63, 64, 100, 2000, 4095, 4096, 10_000]
    profile = InputProfile()
    for chars in lengths:
        profile.observe(chars, "a", 0.5, 1, 0)
    assert profile.length_counts == length_histogram(pd.Series(lengths))


@pytest.mark.unit
def test_profiles_merge_by_adding_counts() -> None:
    one = profile_of(["hi", "x" * 300], [{"label": "a", "score": 0.95}] * 2, [[5, 100], [7]], 100)
    two = profile_of(["hello"], [{"label": "b", "score": 0.15}], [[100, 100, 3]], 100)
    merged = merge_profiles([one.as_dict(), two.as_dict(), {}])
    assert merged.texts == 3
    assert merged.labels == {"a": 2, "b": 1}
    assert merged.tokens == 6 and merged.unknown_tokens == 3
    assert merged.unknown_token_rate == pytest.approx(0.5)
    assert merged.mean_confidence == pytest.approx((0.95 * 2 + 0.15) / 3)
    assert merged.confidence_counts[9] == 2 and merged.confidence_counts[1] == 1
    assert sum(merged.length_counts) == 3
    assert InputProfile.from_dict(json.loads(json.dumps(merged.as_dict()))) == merged


@pytest.mark.unit
def test_rolling_profile_forgets_what_is_two_windows_old() -> None:
    rolling = RollingProfile(window_seconds=10, now=0)
    rolling.add(live(["a"], ["timer"]), now=1)
    rolling.add(live(["b"], ["timer"]), now=12)  # rolls: the first is now the previous window
    assert rolling.snapshot(now=13).texts == 2
    assert rolling.snapshot(now=23).texts == 1  # rolls again: the first is gone
    assert rolling.snapshot(now=50).texts == 0


# -- check_drift with plain values -----------------------------------------------------------


@pytest.mark.unit
def test_training_like_traffic_is_no_drift() -> None:
    reference = data_profile(training_frame(), "text", "label")
    texts = [SHORT[i % 4] for i in range(80)]
    report = check_drift(reference, live(texts, [LABELS[i % 4] for i in range(80)]), THRESHOLDS)
    assert report.judged and not report.drifted, report.reason()
    assert {f.name: f.breached for f in report.figures} == dict.fromkeys(
        ("label_psi", "length_psi", "unknown_token_rate", "mean_confidence"), False
    )


@pytest.mark.unit
def test_shifted_traffic_is_drift() -> None:
    reference = data_profile(training_frame(), "text", "label")
    report = check_drift(reference, live([LONG_TEXT] * 80, ["timer"] * 80), THRESHOLDS)
    assert report.drifted
    breached = {f.name for f in report.figures if f.breached}
    assert breached == {"label_psi", "length_psi"}, report.reason()
    assert report.as_payload()["breached"] == ["label_psi", "length_psi"]


@pytest.mark.unit
def test_unknown_tokens_and_low_confidence_are_drift() -> None:
    reference = data_profile(training_frame(), "text", "label")
    texts = [SHORT[i % 4] for i in range(80)]
    results = [{"label": LABELS[i % 4], "score": 0.2} for i in range(80)]
    profile = profile_of(texts, results, [[100, 100, 5]] * 80, unk_token_id=100)
    breached = {f.name for f in check_drift(reference, profile, THRESHOLDS).figures if f.breached}
    assert breached == {"unknown_token_rate", "mean_confidence"}


@pytest.mark.unit
def test_below_min_requests_is_not_judged() -> None:
    reference = data_profile(training_frame(), "text", "label")
    report = check_drift(reference, live([LONG_TEXT] * 39, ["timer"] * 39), THRESHOLDS)
    assert not report.judged and not report.drifted
    assert any(f.breached for f in report.figures), "the figures are still shown"
    assert "not judged: 39 of 40" in report.reason()


@pytest.mark.unit
def test_recent_profile_sums_the_live_workers_only(registry: Registry) -> None:
    now = datetime.now(UTC)

    def beat(worker: str, age: float, texts: int) -> None:
        profile = live(["set a timer"] * texts, ["timer"] * texts)
        registry.heartbeat(
            WorkerRecord(worker, DEPLOYMENT, 1, "h", now, now - timedelta(seconds=age),
                         "d:v1", None, None, None, {},
                         {"d:v1": {"requests": texts, "profile": profile.as_dict()}})
        )  # fmt: skip

    beat("w1", 0, 3)
    beat("w2", 0, 4)
    beat("w3", 60, 100)  # silent: its figures no longer count
    assert recent_profile(registry, DEPLOYMENT, "d:v1", now).texts == 7
    assert recent_profile(registry, DEPLOYMENT, "d:v2", now).texts == 0


# -- live: a real server, shifted traffic, the CLI, a Prefect server ----------------------------


def _wait_for_texts(registry: Registry, version: str, texts: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = recent_profile(registry, DEPLOYMENT, version).texts
        if seen >= texts:
            break
        time.sleep(0.3)
    return seen


def _monitor_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "monitor", DEPLOYMENT, "--once", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=120,
    )


def _drift_events(since: datetime) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    from flows.deployments import DRIFT_DETECTED

    wanted = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=[DRIFT_DETECTED]),
    )
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            events = list(client.read_events(filter=wanted, limit=50).events)
            if events:
                return events
            time.sleep(0.5)
    return []


@pytest.mark.integration
def test_shifted_live_traffic_emits_the_drift_event(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from serving.control.rollout import promote
    from testbed.live_server import running_server

    monitor = {"min_requests": 20, "min_mean_confidence": 0.0}  # an untrained model's scores
    version = make_version(registry, settings, tokenizer, 0, serving={"monitor": monitor})
    reference = data_profile(training_frame(), "text", "label")
    registry.update_version(version, metrics={PROFILE_KEY: reference})
    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings) as server:
        short = _monitor_cli()
        assert short.returncode == ExitCode.OK, short.stdout + short.stderr
        assert "not judged: 0 of 20" in short.stdout
        for _ in range(30):  # one long text of one kind: one predicted label, one length bin
            assert classify(server.port, LONG_TEXT)[0] == 200
        assert _wait_for_texts(registry, version, 30) >= 30
        since = datetime.now(UTC) - timedelta(seconds=5)
        with prefect_test_harness(server_startup_timeout=120):
            port = urlparse(str(PREFECT_API_URL.value())).port
            assert port is not None
            result = _monitor_cli("--prefect-port", str(port))
            events = _drift_events(since)
    assert result.returncode == ExitCode.SAID_NO, result.stdout + result.stderr
    assert "DRIFT" in result.stdout and "length_psi" in result.stdout
    (entry,) = [e for e in registry.audit_log(DEPLOYMENT) if e.action == "drift.detected"]
    assert entry.version == version and "length_psi" in entry.reason
    assert entry.details["event_id"], "emit_event returned an event"
    assert [e.resource.id for e in events] == [f"conveyor.deployment.{DEPLOYMENT}"]
    assert str(events[0].id) == entry.details["event_id"]
    assert events[0].payload["figures"]["length_psi"] > 0.2
