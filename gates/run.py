"""``evaluate_version``: champion against challenger, verdict stored with the version.

The one place that reads the registry and the recipe for the gates; everything it
calls takes plain values. The Prefect task and the CLI are thin wrappers of this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conveyor.recipe import Recipe, recipe_from_dict
from conveyor.recipe.schema import DataFormat
from conveyor.registry import Registry, VersionRecord, VersionStatus
from conveyor.settings import Settings
from gates.chat.run import ModelSource, base_source, judge_generation_version
from gates.text.decide import decide
from gates.text.evaluate import read_test_set, run_model, score_pair
from gates.text.report import markdown_report, top_confusions, write_plot
from gates.verdict import Evaluation, Verdict

__all__ = ["GateOutcome", "evaluate_version", "find_champion"]

log = logging.getLogger(__name__)
_STATUSES_A_VERDICT_MAY_SET = {"registered", "trained", "evaluated", "rejected"}


@dataclass(frozen=True)
class GateOutcome:
    verdict: Verdict
    candidate: Evaluation
    champion: Evaluation | None
    report: str
    report_path: Path
    plot_path: Path | None
    json_path: Path


def find_champion(
    registry: Registry, candidate: VersionRecord, against: str
) -> VersionRecord | None:
    """``production`` (any alias name), a version reference, or ``none``."""
    champion: VersionRecord | None
    if against == "none":
        return None
    if ":" in against or "@" in against:
        champion = registry.resolve(against)
    else:
        current = registry.alias(candidate.deployment, against)
        champion = registry.resolve(current) if current else None
    if champion is None or champion.version == candidate.version:
        return None
    return champion


def _output_dir(settings: Settings, record: VersionRecord, out_dir: Path | None) -> Path:
    folder = out_dir or settings.home / "reports" / record.deployment / f"v{record.number}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _record(
    registry: Registry,
    record: VersionRecord,
    verdict: Verdict,
    candidate: Evaluation,
    payload: dict[str, Any],
) -> None:
    metrics = {f"test_{name}": value for name, value in candidate.metrics.items()}
    status = None
    if record.status in _STATUSES_A_VERDICT_MAY_SET:
        status = VersionStatus.EVALUATED if verdict.passed else VersionStatus.REJECTED
    registry.update_version(
        record.version, status=status, metrics=metrics, verdict=payload, reason=verdict.reason
    )
    details = {"passed": verdict.passed, "champion": verdict.champion}
    registry.audit(
        "gate.verdict",
        deployment=record.deployment,
        version=record.version,
        reason=verdict.reason,
        details=details,
    )


def evaluate_version(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    against: str = "production",
    overrides: Sequence[str] = (),
    out_dir: Path | None = None,
) -> GateOutcome:
    """Evaluate ``ref`` and its champion on the candidate recipe's test split; judge; record."""
    record = registry.resolve(ref)
    recipe = recipe_from_dict(record.recipe, overrides, source=f"recipe of {record.version}")
    champion_record = find_champion(registry, record, against)
    if recipe.data.format is DataFormat.CHAT:
        return _evaluate_generation(registry, settings, record, recipe, champion_record, out_dir)
    test = read_test_set(recipe)
    log.info("evaluating %s on %s (%d examples)", record.version, test.path, len(test.texts))
    max_length = recipe.model.max_length
    candidate_run = run_model(record.version, record.artifact_uri, recipe.task, test, max_length)
    champion_run = None
    if champion_record is not None:
        log.info("evaluating champion %s on the same split", champion_record.version)
        champion_run = run_model(
            champion_record.version, champion_record.artifact_uri, recipe.task, test, max_length
        )
    candidate, champion, gain = score_pair(test, candidate_run, champion_run, recipe.gates)
    verdict = decide(candidate, champion, recipe.gates, gain)

    folder = _output_dir(settings, record, out_dir)
    scores = candidate_run.scores
    confusions = top_confusions(scores.labels, scores.confusion) if scores else []
    plot = write_plot(folder / "per_class_f1.png", candidate, champion, confusions)
    report = markdown_report(
        verdict,
        candidate,
        champion,
        test_path=str(test.path),
        test_size=len(test.texts),
        samples=candidate_run.samples,
        plot_name=plot.name if plot else None,
        confusions=confusions,
    )
    report_path = folder / "evaluation.md"
    report_path.write_text(report, encoding="utf-8")
    payload = {
        **verdict.as_dict(),
        "report": report,
        "report_path": str(report_path),
        "plot_path": str(plot) if plot else None,
        "candidate_metrics": candidate.metrics,
        "champion_metrics": champion.metrics if champion else None,
        "candidate_interval": candidate.interval.as_dict() if candidate.interval else None,
        "test_split": str(test.path),
        "test_size": len(test.texts),
        "confusion_labels": scores.labels if scores else None,
        "top_confusions": [asdict(c) for c in confusions],
    }
    json_path = folder / "evaluation.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    _record(registry, record, verdict, candidate, payload)
    return GateOutcome(verdict, candidate, champion, report, report_path, plot, json_path)


def _evaluate_generation(
    registry: Registry,
    settings: Settings,
    record: VersionRecord,
    recipe: Recipe,
    champion_record: VersionRecord | None,
    out_dir: Path | None,
) -> GateOutcome:
    """Chat recipes: generated answers judged; the base model, zero-shot, when none serves."""
    candidate = ModelSource(record.version, record.artifact_uri, record.content_sha256)
    if champion_record is None:
        champion = base_source(recipe.model.base, settings.cache_dir)
    else:
        champion = ModelSource(
            champion_record.version, champion_record.artifact_uri, champion_record.content_sha256
        )
    log.info("evaluating %s against %s on generated answers", record.version, champion.name)
    outcome = judge_generation_version(recipe, candidate, champion, settings.cache_dir)
    folder = _output_dir(settings, record, out_dir)
    report_path = folder / "evaluation.md"
    report_path.write_text(outcome.report, encoding="utf-8")
    payload = {**outcome.payload, "report": outcome.report, "report_path": str(report_path)}
    json_path = folder / "evaluation.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    _record(registry, record, outcome.verdict, outcome.candidate, payload)
    return GateOutcome(
        outcome.verdict,
        outcome.candidate,
        outcome.champion,
        outcome.report,
        report_path,
        None,
        json_path,
    )
