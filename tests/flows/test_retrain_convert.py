"""The retrain flow with the recipe's `convert` section, on a real (temporary) Prefect server:
a LoRA fine-tune of a tiny Llama passes its gates, is merged and written as GGUF, keeps parity
with the version it came from (its answers through llama.cpp) and is promoted in its place,
with the conversion's artifact beside the gate verdict."""

from __future__ import annotations

import shutil
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
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.integration
E2E_DIR = REPO_ROOT / "data" / "e2e_nlg"


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_llama: Path) -> Path:
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", 64), ("validation", 16), ("test", 30)):
        lines = (E2E_DIR / f"{split}.jsonl").read_text().splitlines(keepends=True)[:rows]
        (data / f"{split}.jsonl").write_text("".join(lines))
    recipe: dict[str, Any] = {
        "name": "tiny-e2e",
        "task": "causal-lm",
        "data": {"train": "data/train.jsonl", "validation": "data/validation.jsonl",
                 "test": "data/test.jsonl", "format": "chat", "label_field": None},
        "model": {"base": str(base), "max_length": 160},
        "training": {"max_steps": 4, "batch_size": 8, "lr": 3e-2, "warmup_ratio": 0.1,
                     "lora": {"enabled": True, "r": 4, "alpha": 8,
                              "target_modules": ["q_proj", "v_proj"]}},
        "gates": {"bootstrap_samples": 100, "max_perplexity_increase": 100.0,
                  "generation": {"max_prompts": 4, "max_new_tokens": 6,
                                 "task_check": "e2e-facts", "max_headline_drop": 1.0}},
        "convert": {"to": "gguf", "quant": "f16"},
    }  # fmt: skip
    path = tmp_path / "tiny-e2e.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_passing_version_is_converted_judged_and_promoted_as_gguf(
    prefect_server: None, recipe_file: Path, registry: Registry
) -> None:
    outcome = retrain(str(recipe_file))
    conversion = outcome["conversion"]
    assert conversion["passed"], conversion["reason"]
    assert "parity with tiny-e2e:v1" in conversion["reason"]
    assert outcome["promoted"] and outcome["version"] == conversion["version"] == "tiny-e2e:v2"
    assert registry.alias("tiny-e2e", "production") == "tiny-e2e:v2"
    record = registry.resolve("tiny-e2e:v2")
    assert read_manifest(record.artifact_uri or "").kind is ModelKind.GGUF
    assert record.metrics["converted_from"] == "tiny-e2e:v1"
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts() if a.key}
    assert {"tiny-e2e-gate-verdict", "tiny-e2e-conversion", "tiny-e2e-promotion"} <= keys
