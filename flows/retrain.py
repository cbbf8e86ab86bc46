"""The retrain flow: validate -> fine-tune -> evaluate against production -> gate -> promote.

It only composes the stage tasks (``flows.tasks``); every decision lives in a stage.
A failed data check stops the flow before training (the run fails, with the reason);
a failed gate is a decision, not an error: the run completes, named "... rejected".
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from conveyor.offline import apply_offline_environment
from conveyor.recipe import Recipe, load_recipe
from conveyor.registry import Registry, open_registry
from conveyor.settings import load_settings
from conveyor.splits import fingerprint_splits
from flows.keys import run_key
from flows.lines import outcome_text
from flows.tasks import (
    convert_candidate,
    distil_candidate,
    evaluate_candidate,
    package_model,
    promote_model,
    quantize_candidate,
    reconcile_rollout,
    train_model,
    validate_data,
)

__all__ = ["DEFAULT_RECIPE", "retrain", "run_tags"]

DEFAULT_RECIPE = "recipes/clinc150-minilm.yaml"
STAGE_LOGGERS = ("training", "data_checks", "gates", "conversion", "serving")
log = logging.getLogger(__name__)


def run_tags(deployment: str, version: str) -> list[str]:
    """The tags a retrain's run carries, to find it in the UI by deployment and version."""
    return [f"deployment:{deployment}", f"version:{version}"]


def _rename_run(name: str, tags: list[str] | None = None) -> None:
    """Give the run a name that says what it did and tags naming the deployment and version
    it made (best effort: the UI shows them)."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.get_id()
    if run_id is None:
        return
    kept = [t for t in flow_run.get_tags() if not t.startswith(("deployment:", "version:"))]
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(
                flow_run_id=UUID(str(run_id)), name=name, tags=[*kept, *(tags or [])]
            )
    except Exception as exc:  # the run itself must not fail on its name
        log.warning("could not rename flow run: %s", exc)


def _recipe_overrides(overrides: list[str] | None, data_train: str | None) -> list[str]:
    found = list(overrides or [])
    if data_train:
        found.append(f"data.train={data_train}")
    return found


def _converted(
    recipe: Recipe, version: str, champion: str | None, registry: Registry, outcome: dict[str, Any]
) -> str:
    """The version to promote: its GGUF when the recipe converts and the GGUF passes its
    parity gate, else the version itself (the refusal is in the outcome)."""
    if recipe.convert.to != "gguf":
        return version
    converted = convert_candidate(version, champion, recipe.convert.quant, registry)
    return _child_if_passed("conversion", converted, version, outcome)


def _distilled(
    recipe: Recipe, version: str, champion: str | None, registry: Registry, outcome: dict[str, Any]
) -> str:
    """The version to promote: its student when the recipe asks for one (``compress.distil
    .layers``) and it keeps parity with its teacher, else the version itself."""
    layers = recipe.compress.distil.layers
    if layers is None:
        return version
    student = distil_candidate(version, champion, layers, registry)
    return _child_if_passed("distillation", student, version, outcome)


def _quantized(
    recipe: Recipe, version: str, champion: str | None, registry: Registry, outcome: dict[str, Any]
) -> str:
    """The version to promote: its int8 ONNX child when the recipe asks for one and it keeps
    parity, else the version itself (the refusal is in the outcome)."""
    if recipe.compress.quantize.to != "onnx-int8":
        return version
    quantized = quantize_candidate(version, champion, registry)
    return _child_if_passed("quantization", quantized, version, outcome)


def _child_if_passed(
    stage: str, child: dict[str, Any], version: str, outcome: dict[str, Any]
) -> str:
    """Record a derived candidate's result under ``stage``; it is the version to promote when
    it passed its gates, else ``version`` stays (the refusal is in the outcome)."""
    outcome[stage] = child
    if not child["passed"]:
        return version
    outcome["version"] = child["version"]
    return str(child["version"])


@flow(name="retrain", flow_run_name="retrain {recipe}", log_prints=True)
def retrain(
    recipe: str = DEFAULT_RECIPE,
    overrides: list[str] | None = None,
    data_train: str | None = None,
    auto_promote: bool = True,
    canary_percent: float | None = None,
    bake_seconds: float | None = None,
) -> dict[str, Any]:
    """Retrain a deployment from its recipe and promote the result if it passes the gates.

    recipe: path of the recipe YAML. overrides: KEY=VALUE recipe overrides
    (e.g. training.max_steps=200). data_train: a new training file to use instead
    of the recipe's. auto_promote: move production to a passing model. canary_percent,
    bake_seconds: the rollout (default: the recipe's serving section).
    """
    settings = load_settings()
    apply_offline_environment(settings)
    for stage in STAGE_LOGGERS:  # their progress lines (steps, loss, samples/s) reach the run log
        logging.getLogger(stage).setLevel(logging.INFO)
    logger = get_run_logger()
    loaded = load_recipe(recipe, _recipe_overrides(overrides, data_train))
    recipe_json = loaded.model_dump(mode="json")
    key = run_key(
        recipe_json, fingerprint_splits(loaded.data.fingerprinted()), settings.registry_url
    )
    logger.info("retraining %s (run key %s)", loaded.name, key)
    registry = open_registry(settings)

    validation = validate_data(recipe_json, key, registry)
    version = train_model(recipe_json, key, validation["profile"], registry)
    if not registry.has_version(version):  # a cached result from a registry since wiped
        logger.warning("cached %s is not in the registry: training again", version)
        train = train_model.with_options(refresh_cache=True)
        version = train(recipe_json, key, validation["profile"], registry)
    champion = registry.alias(loaded.name, "production")
    verdict = evaluate_candidate(version, champion, key, registry)

    outcome: dict[str, Any] = {
        "deployment": loaded.name,
        "version": version,
        "champion": champion,
        "passed": verdict["passed"],
        "reason": verdict["reason"],
        "promoted": False,
    }
    if version == champion:
        outcome["reason"] = f"{version} already serves {loaded.name}: nothing to promote"
        outcome["reconciled"] = reconcile_rollout(loaded.name, registry)
        _rename_run(
            f"{loaded.name}: {version} already in production", run_tags(loaded.name, version)
        )
    elif not verdict["passed"]:
        _rename_run(f"{loaded.name}: {version} rejected", run_tags(loaded.name, version))
    elif not auto_promote:
        _rename_run(
            f"{loaded.name}: {version} passed, not promoted", run_tags(loaded.name, version)
        )
    else:
        version = _distilled(loaded, version, champion, registry, outcome)
        version = _converted(loaded, version, champion, registry, outcome)
        version = _quantized(loaded, version, champion, registry, outcome)
        outcome["package"] = package_model(version, registry)
        promotion = promote_model(loaded.name, version, canary_percent, bake_seconds, registry)
        outcome["promotion"] = promotion
        outcome["promoted"] = not promotion["rolled_back"]
        if promotion["rolled_back"]:
            outcome["reason"] = f"canary rolled back: {promotion['reason']}"
        verb = "rolled back in canary" if promotion["rolled_back"] else "promoted"
        _rename_run(f"{loaded.name}: {version} {verb}", run_tags(loaded.name, version))
    logger.info("outcome: %s", outcome_text(outcome))
    return outcome
