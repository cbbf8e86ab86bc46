"""The retrain flow with the recipe's `compress` section, on a real (temporary) Prefect
server. A tiny BERT classifier passes its gates, is written as an int8 ONNX graph, keeps
parity with the version it came from and is promoted in its place, with the quantization's
artifact; `conveyor models show` lists the child under its parent with its verdict, speed
and size. A tiny Llama chat model passes its gates, is distilled into a 1-layer student
(`compress.distil`) judged against it, and the student is written as GGUF (`convert`) and
judged against the student: each stage a Prefect task with its artifact and a gated child."""

from __future__ import annotations

import os
import re
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
from testbed.tiny_chat_recipe import write_tiny_chat_recipe

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


@pytest.fixture
def lm_recipe_file(tmp_path: Path, tiny_llama: Path) -> Path:
    # random weights: the tolerances are wide, the stages and their gates are under test
    extra = {
        "compress": {"distil": {"layers": 1, "max_headline_drop": 1.0,
                                "max_perplexity_increase": 100.0}},
        "convert": {"to": "gguf", "quant": "f16", "max_headline_drop": 1.0,
                    "max_fact_error_rise": 1.0},
    }  # fmt: skip
    return write_tiny_chat_recipe(tmp_path, tiny_llama, "tiny-distil", extra)


def test_a_passing_language_model_is_distilled_then_converted_each_stage_gated(
    prefect_server: None, lm_recipe_file: Path, registry: Registry
) -> None:
    outcome = retrain(str(lm_recipe_file))
    distillation, conversion = outcome["distillation"], outcome["conversion"]
    assert distillation["passed"], distillation["reason"]
    assert distillation["version"] == "tiny-distil:v2"
    assert "parity with tiny-distil:v1" in distillation["reason"]
    assert re.match(r"answers [\d.]+ tokens/s vs [\d.]+ tokens/s", distillation["footprint"])
    assert conversion["passed"], conversion["reason"]
    assert "parity with tiny-distil:v2" in conversion["reason"]  # the student's GGUF
    assert outcome["promoted"] and outcome["version"] == conversion["version"] == "tiny-distil:v3"
    assert registry.alias("tiny-distil", "production") == "tiny-distil:v3"

    student = registry.resolve("tiny-distil:v2")
    assert student.metrics["distilled_from"] == "tiny-distil:v1"
    assert student.metrics["student_layers"] == 1
    assert student.verdict is not None and student.verdict["passed"]
    assert read_manifest(student.artifact_uri or "").kind is ModelKind.CAUSAL_LM
    gguf = registry.resolve("tiny-distil:v3")
    assert gguf.metrics["converted_from"] == "tiny-distil:v2"
    assert read_manifest(gguf.artifact_uri or "").kind is ModelKind.GGUF
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts() if a.key}
        tasks = {r.name.rsplit("-", 1)[0]: r for r in client.read_task_runs()}
    stages = ("tiny-distil-gate-verdict", "tiny-distil-distil", "tiny-distil-conversion")
    assert {*stages, "tiny-distil-promotion"} <= keys
    for name in ("fine-tune", "evaluate-and-gate", "distil", "convert-gguf", "promote"):
        assert name in tasks and tasks[name].state_name == "Completed", name
