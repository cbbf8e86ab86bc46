"""The retrain flow with the recipe's `compress.quantize` section, on a real (temporary)
Prefect server: a tiny BERT classifier passes its gates, is written as an int8 ONNX graph,
keeps parity with the version it came from and is promoted in its place, with the
quantization's artifact; `conveyor models show` lists the child under its parent with its
verdict, speed and size."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from conveyor.model_folder import ModelKind, read_manifest
from conveyor.registry import Registry
from flows import retrain
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_bert: Path) -> Path:
    for split, rows in (("train", 60), ("validation", 15), ("test", 25)):
        write_slice(split, rows, tmp_path / f"{split}.jsonl")
    recipe: dict[str, Any] = {
        "name": "tiny-quant",
        "task": "classification",
        "data": {s: f"{s}.jsonl" for s in ("train", "validation", "test")},
        "model": {"base": str(tiny_bert), "max_length": 32},
        "training": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.1},
        "gates": {"min_accuracy": 0.3, "bootstrap_samples": 100},
        "compress": {"quantize": {"to": "onnx-int8", "max_headline_drop": 0.05}},
    }
    path = tmp_path / "tiny-quant.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_passing_classifier_is_quantized_judged_and_promoted_as_int8(
    prefect_server: None, recipe_file: Path, registry: Registry, conveyor_home: Path
) -> None:
    outcome = retrain(str(recipe_file))
    quantization = outcome["quantization"]
    assert quantization["passed"], quantization["reason"]
    assert "parity with tiny-quant:v1" in quantization["reason"]
    assert "weights" in quantization["footprint"]
    assert outcome["promoted"] and outcome["version"] == quantization["version"] == "tiny-quant:v2"
    assert registry.alias("tiny-quant", "production") == "tiny-quant:v2"
    record = registry.resolve("tiny-quant:v2")
    assert read_manifest(record.artifact_uri or "").kind is ModelKind.ONNX_INT8
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts() if a.key}
    assert {"tiny-quant-gate-verdict", "tiny-quant-quantize", "tiny-quant-promotion"} <= keys

    shown = subprocess.run(
        [sys.executable, "-m", "conveyor", "models", "show", "tiny-quant:v1"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
        env={**os.environ, "CONVEYOR_HOME": str(conveyor_home)},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    children = shown.stdout.split("compressed children:")[1]
    assert "tiny-quant:v2" in children and "onnx-int8 int8-per-channel" in children
    assert "parity with" not in children  # the stored verdict's own reason
    assert "against champion tiny-quant:v1" in children and "weights" in children
