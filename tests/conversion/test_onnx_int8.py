"""int8 ONNX versions of a real (tiny, trained) classifier: quantized by ONNX Runtime, judged
against their parent by the parity gate, served by ONNX Runtime, packaged without an fp32
export; refused with the numbers when a gate says no, while production stays put."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conversion import ConversionError
from conveyor.model_folder import ONNX_INT8_FILE, ModelKind, load_model, read_manifest
from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from flows.compress import quantize_and_judge
from serving.control.packaging import package_version
from serving.engine.inference import classify_texts
from serving.worker.loading import ONNX_INT8_BACKEND, load_version, model_folder
from testbed.clinc import clinc_texts, write_slice
from testbed.paths import REPO_ROOT
from training import fine_tune

pytestmark = pytest.mark.integration
DEPLOYMENT = "tiny-int8"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Any]:
    """A tiny BERT fine-tuned on four CLINC intents, registered and in production."""
    root = tmp_path_factory.mktemp("int8")
    write_slice("train", 100, root / "train.jsonl")
    write_slice("validation", 20, root / "validation.jsonl")
    write_slice("test", 30, root / "test.jsonl")
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {s: str(root / f"{s}.jsonl") for s in ("train", "validation", "test")},
        "model": {"base": str(tiny_bert), "max_length": 32},
        "training": {"batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.1, "epochs": 3},
        "gates": {"min_accuracy": 0.4, "bootstrap_samples": 200},
        "compress": {"quantize": {"max_headline_drop": 0.05}},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    settings = Settings(home=root / "home", actor="pytest")
    registry = Registry.from_url(settings.registry_url, actor="pytest")
    result = fine_tune(
        load_recipe(root / "recipe.yaml"), settings, show_progress=False, registry=registry
    )
    assert result.version is not None
    registry.move_alias(DEPLOYMENT, "production", result.version, reason="test")
    return {"root": root, "settings": settings, "registry": registry, "parent": result.version}


def test_int8_child_keeps_parity_serves_on_onnxruntime_and_packages(
    trained: dict[str, Any],
) -> None:
    registry: Registry = trained["registry"]
    parent = trained["parent"]
    outcome = quantize_and_judge(registry, trained["settings"], parent, quant="int8-per-channel")
    assert outcome.passed, outcome.parity.report
    assert outcome.parent == parent and outcome.champion is None  # the champion is the parent
    checks = {c.name: c for c in outcome.parity.verdict.checks}
    assert checks["max_headline_drop"].outcome == "pass"
    assert "95% CI" in checks["max_headline_drop"].detail
    assert outcome.reason.startswith(f"parity with {parent}: pass")

    child = registry.resolve(outcome.version)
    assert child.status == "evaluated" and child.metrics["converted_from"] == parent
    assert child.verdict is not None and child.verdict["champion"] == parent
    folder = Path(str(child.artifact_uri))
    assert read_manifest(folder).kind is ModelKind.ONNX_INT8
    assert not (folder / "model.safetensors").exists()
    parent_folder = Path(str(registry.resolve(parent).artifact_uri))
    smaller = (folder / ONNX_INT8_FILE).stat().st_size
    assert smaller < 0.6 * (parent_folder / "model.safetensors").stat().st_size
    metrics = outcome.parity.candidate.metrics
    assert metrics["model_size_mb"] < outcome.parity.champion.metrics["model_size_mb"]  # type: ignore[union-attr]
    assert registry.alias(DEPLOYMENT, "production") == parent  # judged, not moved

    packaged = package_version(registry, outcome.version, build_bento=False)
    assert ONNX_INT8_FILE in packaged.files and packaged.onnx_max_abs_diff is None
    served = load_version(registry.resolve(outcome.version))
    assert served.backend == ONNX_INT8_BACKEND
    assert model_folder(registry.resolve(outcome.version)) != folder  # the store's copy
    texts = list(clinc_texts()[:64])
    ours = classify_texts(served.loaded, texts, 1, 32)
    theirs = classify_texts(load_model(parent_folder, "classification"), texts, 1, 32)
    agree = sum(a["label"] == b["label"] for a, b in zip(ours, theirs, strict=True))
    assert agree >= 60, f"int8 agreed with fp32 on {agree} of 64 texts"


def test_a_child_failing_its_gate_is_refused_with_the_numbers_and_nothing_moves(
    trained: dict[str, Any],
) -> None:
    registry: Registry = trained["registry"]
    parent = trained["parent"]
    env = {
        **os.environ,
        "CONVEYOR_HOME": str(trained["settings"].home),
        "CONVEYOR_ACTOR": "pytest",
    }
    record = registry.resolve(parent)
    strict = registry.register_version(  # the same folder, with a floor no model here meets
        DEPLOYMENT,
        task=record.task,
        base_model=record.base_model,
        recipe={**record.recipe, "gates": {**record.recipe["gates"], "min_accuracy": 0.999}},
        artifact_uri=record.artifact_uri,
        content_sha256=record.content_sha256,
        serving_spec=record.serving_spec,
    ).version
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "convert", strict, "--to", "onnx-int8"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    new = result.stdout.strip().splitlines()[-1]
    assert registry.resolve(new).status == "rejected"
    assert "refused" in result.stdout and "< 0.9990" in result.stdout
    assert f"against {strict}: p50 batch 1" in result.stdout and "weights" in result.stdout
    assert registry.alias(DEPLOYMENT, "production") == parent


def test_what_cannot_quantize_is_bad_input(trained: dict[str, Any]) -> None:
    registry: Registry = trained["registry"]
    settings: Settings = trained["settings"]
    from conversion import quantize_version

    with pytest.raises(ConversionError, match="choose one of int8, int8-per-channel"):
        quantize_version(registry, settings, trained["parent"], quant="q4_0")
    child = quantize_version(registry, settings, trained["parent"], quant="int8")
    with pytest.raises(ConversionError, match="is already onnx-int8: quantize its parent"):
        quantize_version(registry, settings, child.version)
    env = {**os.environ, "CONVEYOR_HOME": str(settings.home)}
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "convert", child.version, "--to", "onnx-int8",
         "--quant", "q8_0"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --quant q8_0 is not a onnx-int8 quant: choose one of int8, int8-per-channel"
    )
