"""`conveyor k8s render`: the overlay of a registered version, checked offline.

Core kinds go through the real ``kubernetes-validate --strict``; the ScaledObject through KEDA's
own CRD schema (``infra/keda``, KEDA 2.16.1) with ``jsonschema``, unknown fields refused as the
API server's strict field validation refuses them.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conveyor.errors import ConveyorError
from conveyor.recipe import load_recipe
from conveyor.recipe.autoscale import AutoscaleSection
from conveyor.registry import Registry
from conveyor.serving_spec import ServingSpec
from serving.control.k8s import Overlay
from serving.worker.drain import FIRST_BYTE_TIMEOUT_S, PRESTOP_SECONDS
from testbed.paths import RECIPES_DIR, REPO_ROOT
from tests.infra.test_manifests import validate_manifests
from tests.serving.test_dashboard import exported_series

pytestmark = pytest.mark.unit

KEDA_SCHEMA = REPO_ROOT / "infra" / "keda" / "scaledobject.schema.yaml"
CORE_FILES = ("deployment.yaml", "service.yaml", "pdb.yaml")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused wherever it lists an object's properties."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def keda_problems(doc: dict[str, Any]) -> list[str]:
    schema = strict(yaml.safe_load(KEDA_SCHEMA.read_text()))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def _register(home: Path, recipe_file: str, overrides: list[str]) -> str:
    """A production version of the recipe's deployment (the render reads no model files)."""
    recipe = load_recipe(RECIPES_DIR / recipe_file, overrides)
    registry = Registry.from_url(f"sqlite:///{home / 'registry.db'}", actor="tester")
    record = registry.register_version(
        recipe.name,
        task=recipe.task.value,
        base_model=recipe.model.base,
        recipe=recipe.model_dump(mode="json"),
        serving_spec=ServingSpec.from_recipe(recipe).as_record(),
        content_sha256="ab" * 32,
    )
    registry.move_alias(recipe.name, "production", record.version, reason="test")
    registry.close()
    return record.version


def render(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "k8s", "render", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "CONVEYOR_HOME": str(home)},
        timeout=120,
    )


def _docs(folder: Path, name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((folder / name).read_text()) if d]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    _register(home, "clinc150-minilm.yaml", ["serving.autoscale.max_replicas=6"])
    _register(home, "e2e-smollm2.yaml", ["serving.autoscale.target_waiting=3"])
    return home


@pytest.fixture(scope="module")
def classifier(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("classifier")
    result = render(home, "clinc150-minilm", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def language_model(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm")
    result = render(home, "e2e-smollm2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_the_overlay_lists_its_files(classifier: Path) -> None:
    (kustomization,) = _docs(classifier, "kustomization.yaml")
    assert kustomization["resources"] == sorted([*CORE_FILES, "scaledobject.yaml"])
    assert all((classifier / name).is_file() for name in kustomization["resources"])


@pytest.mark.parametrize("kind", ["classifier", "language_model"])
def test_core_kinds_are_valid_in_strict_mode(kind: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(kind)
    assert validate_manifests(*(folder / name for name in CORE_FILES)) == []


@pytest.mark.parametrize("kind", ["classifier", "language_model"])
def test_scaled_object_is_valid_against_kedas_crd(
    kind: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(kind)
    (scaled,) = _docs(folder, "scaledobject.yaml")
    assert keda_problems(scaled) == []


def test_the_keda_check_refuses_a_misplaced_field(classifier: Path) -> None:
    (scaled,) = _docs(classifier, "scaledobject.yaml")
    scaled["spec"]["triggers"][0]["threshold"] = "8"  # belongs in the trigger's metadata
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"
    ] = 4000
    problems = keda_problems(scaled)
    assert any("'threshold' was unexpected" in p for p in problems), problems
    assert any("4000 is greater than the maximum of 3600" in p for p in problems), problems


def test_a_classifier_scales_on_requests_in_flight_per_replica(classifier: Path) -> None:
    (scaled,) = _docs(classifier, "scaledobject.yaml")
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 6)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    query = trigger["metadata"]["query"]
    assert query == (
        'sum(conveyor_in_flight_requests{namespace="conveyor",deployment="clinc150-minilm"})'
    )
    assert trigger["metadata"]["threshold"] == "8"
    assert spec["scaleTargetRef"]["name"] == "conveyor-clinc150-minilm"


def test_a_language_model_scales_on_waiting_requests_and_output_tokens(
    language_model: Path,
) -> None:
    (scaled,) = _docs(language_model, "scaledobject.yaml")
    triggers = {t["name"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    assert set(triggers) == {"waiting", "output-tokens-per-second"}
    assert triggers["waiting"]["threshold"] == "3"
    assert "conveyor_waiting_requests{" in triggers["waiting"]["query"]
    tokens = triggers["output-tokens-per-second"]["query"]
    assert tokens.startswith("sum(rate(conveyor_output_tokens_sum{") and tokens.endswith("[1m]))")


def test_every_query_names_a_series_the_workers_export(
    classifier: Path, language_model: Path
) -> None:
    exported = exported_series()
    for folder in (classifier, language_model):
        (scaled,) = _docs(folder, "scaledobject.yaml")
        for trigger in scaled["spec"]["triggers"]:
            query = trigger["metadata"]["query"]
            (name,) = re.findall(r"\b(conveyor_[a-z_]+)\{", query)
            assert name in exported, query


def test_behavior_carries_the_recipes_windows_and_policies(classifier: Path) -> None:
    (scaled,) = _docs(classifier, "scaledobject.yaml")
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 4, "periodSeconds": 15}]


def test_pods_take_traffic_once_ready_and_drain_the_longest_answer(
    classifier: Path, language_model: Path
) -> None:
    (classify,) = _docs(classifier, "deployment.yaml")
    (generate,) = _docs(language_model, "deployment.yaml")
    assert "replicas" not in classify["spec"]  # the autoscaler owns the count
    pod = classify["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": PRESTOP_SECONDS}}
    assert pod["terminationGracePeriodSeconds"] == PRESTOP_SECONDS + FIRST_BYTE_TIMEOUT_S + 5
    # e2e-smollm2: 64 new tokens at the slowest 2 tokens/s allowed = 32 s more
    lm_grace = generate["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert lm_grace == PRESTOP_SECONDS + FIRST_BYTE_TIMEOUT_S + 32 + 5
    env = {e["name"]: e for e in container["env"]}
    assert env["CONVEYOR_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "conveyor-db"
    assert container["image"].startswith("registry.example.com/conveyor/clinc150-minilm:v1-abab")


def test_the_disruption_budget_allows_drains_at_one_replica(classifier: Path) -> None:
    (pdb,) = _docs(classifier, "pdb.yaml")
    (deployment,) = _docs(classifier, "deployment.yaml")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }


def test_without_keda_a_cpu_autoscaler_takes_its_place(home: Path, tmp_path: Path) -> None:
    result = render(home, "clinc150-minilm", "--out", str(tmp_path), "--no-keda")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "scaledobject.yaml").exists()
    (hpa,) = _docs(tmp_path, "hpa.yaml")
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert validate_manifests(tmp_path / "hpa.yaml") == []


def test_an_unknown_deployment_exits_not_found(home: Path, tmp_path: Path) -> None:
    result = render(home, "nope", "--out", str(tmp_path))
    assert result.returncode == 3 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_a_deployment_name_too_long_for_a_service_is_refused() -> None:
    with pytest.raises(ConveyorError, match="at most 63 characters; .* at most 54"):
        Overlay("d" * 55, "v", "classification", "img:1", AutoscaleSection(), None)
    assert Overlay("d" * 54, "v", "classification", "img:1", AutoscaleSection(), None).name
