"""Real tiny models, trained with the real DeepSpeed stage, judged by the real gates.

A champion serves; a candidate trained on shuffled labels is rejected with a reason a
person can read while production stays put; a better-trained candidate passes. Broken
artifacts and unknown test labels are judged, not crashed on.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.errors import ExitCode
from conveyor.recipe import load_recipe
from conveyor.registry import Registry, VersionStatus
from conveyor.settings import Settings
from gates import evaluate_version
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT
from training import fine_tune

pytestmark = pytest.mark.integration

DEPLOYMENT = "tiny-intents"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gates")
    write_slice("train", 100, root / "train.jsonl")
    write_slice("train", 100, root / "train-shuffled.jsonl", shuffle_seed=3)
    write_slice("validation", 20, root / "validation.jsonl")
    write_slice("test", 30, root / "test.jsonl")
    settings = Settings(home=root / "home", actor="pytest")
    registry = Registry.from_url(settings.registry_url, actor="pytest")
    return {"root": root, "settings": settings, "registry": registry, "base": tiny_bert}


def _train(ws: dict[str, Any], train_file: str, **training: Any) -> str:
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {
            "train": str(ws["root"] / train_file),
            "validation": str(ws["root"] / "validation.jsonl"),
            "test": str(ws["root"] / "test.jsonl"),
        },
        "model": {"base": str(ws["base"]), "max_length": 32},
        "training": {"batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.1, "seed": 5, **training},
        "gates": {"min_accuracy": 0.4, "max_macro_f1_drop": 0.01, "max_class_f1_drop": 0.15},
    }
    path = ws["root"] / f"recipe-{train_file}-{len(training)}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = fine_tune(
        load_recipe(path), ws["settings"], show_progress=False, registry=ws["registry"]
    )
    assert result.version is not None
    return result.version


@pytest.fixture(scope="module")
def champion(workspace: dict[str, Any]) -> str:
    registry: Registry = workspace["registry"]
    version = _train(workspace, "train.jsonl", epochs=2)
    outcome = evaluate_version(registry, workspace["settings"], version)
    assert outcome.verdict.passed, outcome.report
    assert outcome.verdict.reason.endswith("(first model: judged on thresholds alone)")
    registry.move_alias(DEPLOYMENT, "production", version, reason="first model passed the gates")
    return version


def test_shuffled_label_candidate_is_rejected_and_production_stays(
    workspace: dict[str, Any], champion: str
) -> None:
    registry: Registry = workspace["registry"]
    candidate = _train(workspace, "train-shuffled.jsonl", epochs=2)
    outcome = evaluate_version(registry, workspace["settings"], candidate)
    verdict = outcome.verdict
    assert not verdict.passed
    assert verdict.champion == champion
    assert verdict.reason.startswith("fail: ")
    assert f"macro-F1 drop vs {champion}" in verdict.reason
    failed = {c.name for c in verdict.checks if c.outcome == "fail"}
    assert {"max_macro_f1_drop", "max_class_f1_drop"} <= failed
    assert registry.alias(DEPLOYMENT, "production") == champion
    record = registry.resolve(candidate)
    assert record.status == VersionStatus.REJECTED
    assert record.verdict is not None and record.verdict["reason"] == verdict.reason
    assert "| `max_macro_f1_drop` |" in record.verdict["report"]
    assert outcome.report_path.is_file() and outcome.plot_path is not None
    assert outcome.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.champion is not None
    assert outcome.champion.metrics["macro_f1"] > outcome.candidate.metrics["macro_f1"] + 0.2
    audit = [e for e in registry.audit_log(DEPLOYMENT) if e.action == "gate.verdict"]
    assert audit[0].version == candidate and audit[0].reason == verdict.reason


def test_better_candidate_passes_against_the_champion(
    workspace: dict[str, Any], champion: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry: Registry = workspace["registry"]
    candidate = _train(workspace, "train.jsonl", epochs=4)
    with caplog.at_level(logging.INFO, logger="gates"):
        outcome = evaluate_version(registry, workspace["settings"], candidate)
    progress = [
        r.getMessage() for r in caplog.records if "test examples classified" in r.getMessage()
    ]
    assert {line.split(": ")[0] for line in progress} == {candidate, champion}, progress
    assert all(" elapsed" in line for line in progress), progress
    assert outcome.verdict.passed, outcome.report
    assert outcome.verdict.reason == f"pass: all 3 checks passed against champion {champion}"
    assert outcome.verdict.gain is not None
    assert outcome.candidate.interval is not None
    assert registry.resolve(candidate).status == VersionStatus.EVALUATED
    assert outcome.candidate.metrics["p99_ms_batch1"] > 0
    assert outcome.candidate.metrics["model_size_mb"] > 0


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"CONVEYOR_HOME": str(home), "PATH": "/usr/bin:/bin", "CONVEYOR_ACTOR": "pytest"}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
    )


def _register_copy(ws: dict[str, Any], source: str, artifact: Path) -> str:
    registry: Registry = ws["registry"]
    record = registry.resolve(source)
    return registry.register_version(
        DEPLOYMENT,
        task=record.task,
        base_model=record.base_model,
        recipe=record.recipe,
        artifact_uri=str(artifact),
        status=VersionStatus.TRAINED,
    ).version


def test_corrupt_or_missing_artifact_fails_loudly(workspace: dict[str, Any], champion: str) -> None:
    registry: Registry = workspace["registry"]
    source = Path(str(registry.resolve(champion).artifact_uri))
    corrupt = workspace["root"] / "corrupt-model"
    corrupt.mkdir()
    for item in source.iterdir():
        (corrupt / item.name).write_bytes(item.read_bytes())
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    broken = _register_copy(workspace, champion, corrupt)
    result = _cli(workspace["settings"].home, "evaluate", broken)
    assert result.returncode == ExitCode.SAID_NO, result.stderr
    assert "Traceback" not in result.stderr
    assert "gate verdict:     fail: artifact unloadable: cannot load" in result.stdout
    assert registry.alias(DEPLOYMENT, "production") == champion

    missing = _register_copy(workspace, champion, workspace["root"] / "gone")
    outcome = evaluate_version(registry, workspace["settings"], missing)
    assert outcome.verdict.reason == (
        f"fail: artifact unloadable: artifact missing: {workspace['root'] / 'gone'} does not exist"
    )
    shown = _cli(workspace["settings"].home, "models", "show", missing)
    assert "gate verdict:" in shown.stdout and "artifact unloadable" in shown.stdout


def test_test_labels_the_model_never_saw_are_reported(
    workspace: dict[str, Any], champion: str
) -> None:
    test = workspace["root"] / "test-new-label.jsonl"
    rows = (workspace["root"] / "test.jsonl").read_text()
    test.write_text(
        rows + json.dumps({"text": "book me a table for two", "label": "restaurant"}) + "\n"
    )
    outcome = evaluate_version(
        workspace["registry"],
        workspace["settings"],
        champion,
        against="none",
        overrides=[f"data.test={test}"],
        out_dir=workspace["root"] / "unknown-report",
    )
    assert outcome.candidate.unknown_labels == {"restaurant": 1}
    warning = [c for c in outcome.verdict.checks if c.name == "known_test_labels"]
    assert warning and warning[0].outcome == "warn"
    assert "1 test examples have labels the model does not know (restaurant)" in outcome.report
