"""`conveyor traffic compare --artifact`: the side-by-side table on a real Prefect server,
published directly and by the real command over a Postgres capture sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from conveyor.ports import free_port
from conveyor.registry import Registry
from conveyor.serving_spec import serving_spec_of
from conveyor.settings import Settings
from flows.server import stop_prefect_server
from serving.worker.capture import CaptureRecorder, Exchange
from testbed.paths import REPO_ROOT
from testbed.versions import DEPLOYMENT, make_version

pytestmark = pytest.mark.integration


def test_the_comparison_reaches_a_real_prefect_server_as_artifacts() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    from flows.artifacts import publish_comparison

    rows = [{"request": "wire money", "answer_a": "transfer", "answer_b": "translate",
             "same": False, "seen": 2}]  # fmt: skip
    with prefect_test_harness(server_startup_timeout=120):
        key = publish_comparison("intents", "1 of 2 differ", "intents:v1", "intents:v2", rows)
        with get_client(sync_client=True) as client:
            keys = [key, f"{key}-summary"]
            found = client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
            )
    by_key = {a.key: a for a in found}
    table = by_key[key].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table == [{"input": "wire money", "intents:v1": "transfer", "intents:v2": "translate",
                      "agree": "differs", "asked": "2"}]  # fmt: skip
    assert "1 of 2 differ" in str(by_key[f"{key}-summary"].data)


@pytest.mark.postgres
def test_conveyor_traffic_compare_artifact_publishes_the_capture_from_postgres(
    registry: Registry, settings: Settings, tokenizer: Any, capture_db: str
) -> None:
    """The real CLI: two versions capturing to one Postgres sink, `conveyor traffic compare
    DEP v1 v2 --artifact PORT` starts a Prefect server on the port and publishes the
    side-by-side table and the summary there, as they are read back from its API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    capture = {"capture": {"enabled": True, "sink": capture_db}}
    v1 = make_version(registry, settings, tokenizer, 0, serving=capture)
    v2 = make_version(registry, settings, tokenizer, 1, serving=capture)
    spec = serving_spec_of(registry.resolve(v1)).capture
    answers = {"wire money": ("transfer", "translate"), "set a timer": ("timer", "timer"),
               "play jazz": ("play_music", "play_music")}  # fmt: skip
    for version, side, worker in ((v1, 0, "host-a:1:0"), (v2, 1, "host-b:1:0")):
        recorder = CaptureRecorder(settings.home, DEPLOYMENT, worker)
        for text, said in answers.items():
            exchange = Exchange(version, "active", "shop", "classify", 200, 2.0, text, said[side])
            recorder.submit(spec, [exchange, exchange])
        recorder.stop()
        assert recorder.state.written == 6
    port = free_port()
    env = {**os.environ, "CONVEYOR_HOME": str(settings.home)}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "conveyor", "traffic", "compare", DEPLOYMENT, v1, v2]
            + ["--artifact", str(port), "--json"],
            capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        compared = json.loads(result.stdout)
        assert (compared["shared"], compared["same"], compared["agreement"]) == (3, 2, 2 / 3)
        key = f"{DEPLOYMENT}-traffic-compare"
        assert f"artifact: http://127.0.0.1:{port}/artifacts/key/{key}" in result.stderr
        with (
            temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}),
            get_client(sync_client=True) as client,
        ):
            found = client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key, f"{key}-summary"]))
            )
    finally:
        stop_prefect_server(settings)
    by_key = {a.key: a for a in found}
    table = by_key[key].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table == [{"input": "wire money", v1: "transfer", v2: "translate",
                      "agree": "differs", "asked": "4"}]  # fmt: skip
    summary = str(by_key[f"{key}-summary"].data)
    assert f"{v1} vs {v2}: 3 inputs both answered, 2 the same (66.7%)" in summary
