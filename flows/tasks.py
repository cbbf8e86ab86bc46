"""The retrain flow's tasks: each wraps one stage function and publishes what it decided.

Results are persisted (as JSON: nothing is unpickled from the result store) and keyed
by (stage inputs, run key), so a re-run of the same data, recipe and code skips every
stage that already finished. The flow opens one registry and passes it to every task
(it is left out of the cache key). A failed data or gate check is never retried:
retries are for what a retry can fix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run

from conveyor.errors import ConveyorError, ExitCode
from conveyor.recipe import Recipe
from conveyor.registry import Registry
from conveyor.settings import load_settings
from flows.artifacts import (
    publish_conversion,
    publish_gate_verdict,
    publish_promotion,
    publish_validation,
)
from flows.lines import Promotion, log_line, metrics_text, promotion_lines, run_lineage

__all__ = [
    "DataGateFailed",
    "distil_candidate",
    "evaluate_candidate",
    "package_model",
    "promote_model",
    "quantize_candidate",
    "reconcile_rollout",
    "train_model",
    "validate_data",
]


# The registry is a live connection: it is not part of what a stage's result depends on.
CACHED = INPUTS - "registry"


class DataGateFailed(ConveyorError):
    """The data checks failed: the flow stops before training."""

    exit_code = ExitCode.SAID_NO


def _retry_unless_user_error(task: Task[Any, Any], run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except ConveyorError:
        return False
    except Exception:
        return True
    return False


@task(name="validate-data", cache_policy=CACHED, persist_result=True, result_serializer="json")
def validate_data(recipe_json: dict[str, Any], run_key: str, registry: Registry) -> dict[str, Any]:
    """Great Expectations and the data gates; raises DataGateFailed on failure."""
    import data_checks

    logger = get_run_logger()
    recipe = Recipe.model_validate(recipe_json)
    settings = load_settings()
    reference = data_checks.find_reference(registry, recipe.name, None)
    report = data_checks.validate_recipe(recipe, reference=reference, progress=logger.info)
    folder = settings.home / "reports" / recipe.name / f"validate-{run_key}"
    json_path, md_path = data_checks.write_reports(report, folder)
    rows = [
        {"split": c.split, "check": c.name, "outcome": str(c.outcome), "summary": c.summary}
        for c in report.checks
    ]
    publish_validation(recipe.name, md_path.read_text(encoding="utf-8"), rows)
    if report.exit_code != 0:
        lines = [report.error or ""] + [c.line() for c in report.failures]
        raise DataGateFailed(
            f"data checks failed ({report.summary()}): " + "; ".join(filter(None, lines))
        )
    logger.info("data checks: %s (report %s)", report.summary(), md_path)
    return {
        "summary": report.summary(),
        "data_fingerprint": report.data_fingerprint,
        "profile": report.profile,
        "report": str(json_path),
    }


@task(
    name="fine-tune",
    cache_policy=CACHED,
    persist_result=True,
    result_serializer="json",
    retries=1,
    retry_condition_fn=_retry_unless_user_error,
)
def train_model(
    recipe_json: dict[str, Any], run_key: str, profile: dict[str, Any] | None, registry: Registry
) -> str:
    """Fine-tune (in this process or through the launcher); resumes this run's checkpoints."""
    import training
    from data_checks import PROFILE_KEY

    logger = get_run_logger()
    recipe = Recipe.model_validate(recipe_json)
    settings = load_settings()
    resume = training.resumable(settings, recipe)
    if resume:
        logger.info("resuming %s from its last checkpoint", recipe.name)
    result = training.run(recipe, settings, resume=resume, registry=registry)
    version = str(result.version)
    if profile is not None:
        registry.update_version(version, metrics={PROFILE_KEY: profile})
    made_by = run_lineage(flow_run.get_id(), flow_run.get_flow_run_ui_url())
    if made_by:
        registry.update_version(version, lineage=made_by)
    logger.info("trained %s: %s", version, metrics_text(result.metrics))
    return version


@task(
    name="evaluate-and-gate",
    cache_policy=CACHED,
    persist_result=True,
    result_serializer="json",
    retries=1,
    retry_condition_fn=_retry_unless_user_error,
)
def evaluate_candidate(
    version: str, champion: str | None, run_key: str, registry: Registry
) -> dict[str, Any]:
    """Candidate and champion on one test split; the verdict is recorded and published."""
    from gates import evaluate_version

    settings = load_settings()
    outcome = evaluate_version(registry, settings, version, against=champion or "none")
    payload = {
        **outcome.verdict.as_dict(),
        "report": outcome.report,
        "plot_path": str(outcome.plot_path) if outcome.plot_path else None,
        "report_path": str(outcome.report_path),
    }
    publish_gate_verdict(version.split(":")[0], payload)
    get_run_logger().info("gate verdict for %s: %s", version, outcome.verdict.reason)
    return payload


@task(name="convert-gguf", cache_policy=NO_CACHE)
def convert_candidate(
    version: str, champion: str | None, quant: str, registry: Registry
) -> dict[str, Any]:
    """The passing candidate written as GGUF for llama.cpp, judged against it (parity) and
    the champion; the outcome and the parity report are an artifact."""
    from flows.convert import convert_and_judge

    outcome = convert_and_judge(
        registry, load_settings(), version, quant=quant, against=champion or "none"
    )
    deployment = version.split(":")[0]
    verdict = "passed" if outcome.passed else "refused"
    lines = [
        f"# {outcome.version}: GGUF {quant} of {version}, {verdict}",
        "",
        f"- {outcome.reason}",
        f"- parity report: `{outcome.parity.report_path}`",
    ]
    publish_conversion(deployment, lines, outcome.parity.report)
    get_run_logger().info("conversion of %s: %s (%s)", version, verdict, outcome.reason)
    return {"version": outcome.version, "passed": outcome.passed, "reason": outcome.reason}


@task(name="quantize-onnx-int8", cache_policy=NO_CACHE)
def quantize_candidate(version: str, champion: str | None, registry: Registry) -> dict[str, Any]:
    """The passing classifier written as an int8 ONNX graph, judged against it (parity) and
    the champion; the outcome, its speed and size, and the parity report are an artifact."""
    from flows.compress import quantize_and_judge

    outcome = quantize_and_judge(registry, load_settings(), version, against=champion or "none")
    return _derived_outcome(
        version, outcome, f"int8 ONNX of {version}", stage="quantize", what="int8 ONNX"
    )


@task(name="distil", cache_policy=NO_CACHE)
def distil_candidate(
    version: str, champion: str | None, layers: int, registry: Registry
) -> dict[str, Any]:
    """A ``layers``-layer student of the passing version, trained on its soft targets and
    judged against it (parity) and the champion; the outcome and parity report an artifact."""
    from flows.compress import distil_and_judge

    outcome = distil_and_judge(
        registry, load_settings(), version, layers=layers, against=champion or "none"
    )
    title = f"{layers}-layer student of {version}"
    return _derived_outcome(version, outcome, title, stage="distil", what="Student")


def _derived_outcome(
    version: str, outcome: Any, title: str, *, stage: str, what: str
) -> dict[str, Any]:
    """A judged child of ``version`` (int8 graph, student) published as the stage's
    artifact and logged; its outcome, speed and size for the flow."""
    from gates import footprint

    parity = outcome.parity
    speed = footprint(parity.candidate.metrics, parity.champion.metrics if parity.champion else {})
    verdict = "passed" if outcome.passed else "refused"
    lines = [
        f"# {outcome.version}: {title}, {verdict}",
        "",
        f"- {outcome.reason}",
        f"- against {version}: {speed or 'no figures'}",
        f"- parity report: `{parity.report_path}`",
    ]
    publish_conversion(version.split(":")[0], lines, parity.report, stage=stage, what=what)
    get_run_logger().info("%s: %s (%s)", title, verdict, outcome.reason)
    return {
        "version": outcome.version,
        "passed": outcome.passed,
        "reason": outcome.reason,
        "footprint": speed,
    }


@task(name="package", cache_policy=NO_CACHE, retries=1, retry_condition_fn=_retry_unless_user_error)
def package_model(version: str, registry: Registry) -> dict[str, Any]:
    """Into the BentoML model store (safetensors only) and an immutable Bento pinning it."""
    from serving.control.packaging import package_version

    done = package_version(registry, version)
    get_run_logger().info(
        "packaged %s: model %s, bento %s", version, done.model_tag, done.bento_tag
    )
    return {"model_tag": done.model_tag, "bento_tag": done.bento_tag, "files": done.files}


@task(name="promote", cache_policy=NO_CACHE)
def promote_model(
    deployment: str,
    version: str,
    canary_percent: float | None,
    bake_seconds: float | None,
    registry: Registry,
) -> dict[str, Any]:
    """Verify it loads, move production (canary and bake when servers are live), wait for them.

    With no live server there is no traffic to judge a canary on: the alias moves straight
    and servers load the version when they start.
    """
    from serving.canary.bake import live_workers
    from serving.control.rollout import NO_LIVE_WORKER, promote
    from serving.control.wording import clock, endpoints, how_moved

    logger = get_run_logger()
    previous = registry.alias(deployment, "production")
    live = live_workers(registry, deployment)
    canary = canary_percent if live else 0.0
    outcome = promote(registry, version, canary_percent=canary, bake_seconds=bake_seconds)
    rollout = outcome.rollout
    result = {
        "state": str(rollout.state),
        "rolled_back": outcome.rolled_back,
        "canary_percent": rollout.canary_percent,
        "bake_seconds": rollout.bake_seconds,
        "workers": outcome.workers,
        "verify_load_seconds": round(outcome.load_seconds, 3),
        "converge_seconds": round(outcome.converge_seconds, 3),
        "notes": outcome.notes,
        "reason": rollout.reason,
    }
    why = "" if live or rollout.previous is None else "no live worker to send canary traffic to"
    serving = [w for w in live_workers(registry, deployment) if w.worker in outcome.workers]
    lines = promotion_lines(
        Promotion(
            deployment=deployment,
            version=version,
            previous=previous,
            production=registry.alias(deployment, "production"),
            rolled_back=outcome.rolled_back,
            how=how_moved(
                rollout.kind, rollout.previous, rollout.canary_percent, rollout.bake_seconds, why
            ),
            state=str(rollout.state),
            written=clock(rollout.finished_at or datetime.now(UTC)),
            workers=outcome.workers,
            endpoints=endpoints([w.url for w in serving]),
            load_seconds=outcome.load_seconds,
            converge_seconds=outcome.converge_seconds,
            notes=[note for note in outcome.notes if note != NO_LIVE_WORKER],
        )
    )
    publish_promotion(deployment, lines)
    logger.info("%s", log_line(lines))
    return result


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_rollout(deployment: str, registry: Registry) -> str | None:
    """After a crash mid-promotion: record the rollout the servers completed by themselves."""
    from serving.control.rollout import reconcile

    closed = reconcile(registry, deployment)
    if closed is None:
        return None
    outcome = str(closed.details.get("outcome", closed.reason))
    get_run_logger().info("rollout %s of %s: %s", closed.id, closed.version, outcome)
    return outcome
