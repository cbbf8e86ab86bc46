"""The retrain flow with the recipe's `convert` section, on a real (temporary) Prefect server:
a LoRA fine-tune of a tiny Llama passes its gates, is merged and written as GGUF, keeps parity
with the version it came from (its answers through llama.cpp) and is promoted in its place,
with the conversion's artifact beside the gate verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from conveyor.model_folder import ModelKind, read_manifest
from conveyor.registry import Registry
from flows import retrain
from testbed.tiny_chat_recipe import write_tiny_chat_recipe

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_llama: Path) -> Path:
    extra = {"convert": {"to": "gguf", "quant": "f16"}}
    return write_tiny_chat_recipe(tmp_path, tiny_llama, "tiny-e2e", extra)


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
