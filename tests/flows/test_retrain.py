"""The retrain flow on a real (temporary) Prefect server, with tiny real models.

First run: validated, trained, judged as a first model, promoted. A run on
shuffled labels: rejected with the gate's reason, production untouched, the run
named so. A run on a broken file: stopped before training. A re-run of the first:
every stage comes from the persisted results, nothing retrains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from conveyor.registry import Registry
from flows import retrain
from flows.tasks import DataGateFailed
from testbed.clinc import write_slice

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_bert: Path) -> Path:
    write_slice("train", 100, tmp_path / "train.jsonl")
    write_slice("train", 100, tmp_path / "shuffled.jsonl", shuffle_seed=3)
    write_slice("validation", 20, tmp_path / "validation.jsonl")
    write_slice("test", 30, tmp_path / "test.jsonl")
    broken = (tmp_path / "train.jsonl").read_text()
    (tmp_path / "broken.jsonl").write_text(broken[: len(broken) // 2 + 7])
    recipe: dict[str, Any] = {
        "name": "tiny-intents",
        "task": "classification",
        "data": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "model": {"base": str(tiny_bert), "max_length": 32},
        "training": {"epochs": 4, "batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.1, "seed": 5},
        "gates": {"min_accuracy": 0.4},
    }
    path = tmp_path / "tiny-intents.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _run_names() -> list[str]:
    with get_client(sync_client=True) as client:
        return [run.name for run in client.read_flow_runs()]


def _artifact_keys() -> set[str]:
    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts() if a.key}


def _said_by(run_name: str) -> tuple[Any, list[str], str]:
    """The run named so, its log lines, and the newest promotion artifact's Markdown."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # the run's last lines are still on their way
    with get_client(sync_client=True) as client:
        run = next(r for r in client.read_flow_runs() if r.name == run_name)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        key = ArtifactFilter(key=ArtifactFilterKey(any_=["tiny-intents-promotion"]))
        [artifact] = client.read_latest_artifacts(artifact_filter=key)
    return run, [log.message for log in logs], str(artifact.data)


def _the_first_run_tells_the_truth(registry: Registry) -> None:
    """Made-by lineage and tags; log lines without Python values or Markdown; a promotion
    artifact that says when it was written, a straight move as one, and the endpoint."""
    from serving.control.wording import made_by

    run, lines, promotion = _said_by("tiny-intents: tiny-intents:v1 promoted")
    lineage = registry.resolve("tiny-intents:v1").lineage or {}
    assert lineage["flow_run_id"] == str(run.id)
    assert lineage["flow_run_url"].endswith(f"/flow-runs/flow-run/{run.id}")
    assert made_by(lineage) == f"flow run {lineage['flow_run_url']}"
    assert {"deployment:tiny-intents", "version:tiny-intents:v1"} <= set(run.tags)
    assert lines and not [m for m in lines if "{'" in m or "**" in m or "`" in m]
    assert any(m.startswith("outcome: tiny-intents:v1 promoted: production of") for m in lines)
    assert any(m.startswith("trained tiny-intents:v1: ") for m in lines), lines
    assert "straight move, no canary (nothing served before to compare with)" in promotion
    assert "- when this was written (20" in promotion and "canary 100%" not in promotion
    assert "- endpoint: none running yet (conveyor serve tiny-intents starts one)" in promotion


def test_retrain_promotes_rejects_stops_and_resumes(
    prefect_server: None, recipe_file: Path, registry: Registry
) -> None:
    first = retrain(str(recipe_file))
    assert first["promoted"] and first["version"] == "tiny-intents:v1"
    assert first["reason"].endswith("(first model: judged on thresholds alone)")
    assert registry.alias("tiny-intents", "production") == "tiny-intents:v1"
    assert registry.resolve("tiny-intents:v1").status in {"packaged", "serving"}
    assert "data_profile" in registry.resolve("tiny-intents:v1").metrics
    assert {
        "tiny-intents-data-validation",
        "tiny-intents-gate-verdict",
        "tiny-intents-gate-checks",
        "tiny-intents-promotion",
    } <= _artifact_keys()
    assert "tiny-intents: tiny-intents:v1 promoted" in _run_names()
    _the_first_run_tells_the_truth(registry)

    shuffled = retrain(str(recipe_file), data_train=str(recipe_file.parent / "shuffled.jsonl"))
    assert shuffled["version"] == "tiny-intents:v2"
    assert not shuffled["passed"] and not shuffled["promoted"]
    assert "macro-F1 drop vs tiny-intents:v1" in shuffled["reason"]
    assert registry.alias("tiny-intents", "production") == "tiny-intents:v1"
    assert "tiny-intents: tiny-intents:v2 rejected" in _run_names()

    with pytest.raises(DataGateFailed, match="broken.jsonl:"):
        retrain(str(recipe_file), data_train=str(recipe_file.parent / "broken.jsonl"))
    assert [v.version for v in registry.list_versions("tiny-intents")][0] == "tiny-intents:v2"

    again = retrain(str(recipe_file))
    assert again["version"] == "tiny-intents:v1"  # cached: no retraining, no new version
    assert "already serves" in again["reason"]
    assert len(registry.list_versions("tiny-intents")) == 2
