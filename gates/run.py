"""``evaluate_version``: champion against challenger, verdict stored with the version.

The one place that reads the registry and the recipe for the gates; everything it
calls takes plain values. The Prefect task and the CLI are thin wrappers of this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.recipe import Recipe, recipe_from_dict
from conveyor.recipe.schema import DataFormat
from conveyor.registry import Registry, VersionRecord, VersionStatus
from conveyor.settings import Settings
from gates.chat.run import ModelSource, base_source, judge_generation_version
from gates.text.run import judge_text_version
from gates.verdict import Evaluation, Judgement, Verdict

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


def _write(folder: Path, judged: Judgement) -> tuple[Path, Path, dict[str, Any]]:
    report_path = folder / "evaluation.md"
    report_path.write_text(judged.report, encoding="utf-8")
    payload = {**judged.payload, "report": judged.report, "report_path": str(report_path)}
    json_path = folder / "evaluation.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return report_path, json_path, payload


def _chat_sources(
    settings: Settings, recipe: Recipe, record: VersionRecord, champion: VersionRecord | None
) -> tuple[ModelSource, ModelSource]:
    """The candidate's folder, and the champion's: the base model, zero-shot, when none serves."""
    candidate = ModelSource(record.version, record.artifact_uri, record.content_sha256)
    if champion is None:
        return candidate, base_source(recipe.model.base, settings.cache_dir)
    return candidate, ModelSource(champion.version, champion.artifact_uri, champion.content_sha256)


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
        candidate, champion = _chat_sources(settings, recipe, record, champion_record)
        log.info("evaluating %s against %s on generated answers", record.version, champion.name)
        judged = judge_generation_version(recipe, candidate, champion, settings.cache_dir)
        folder = _output_dir(settings, record, out_dir)
    else:
        folder = _output_dir(settings, record, out_dir)
        judged = judge_text_version(recipe, record, champion_record, folder)
    report_path, json_path, payload = _write(folder, judged)
    _record(registry, record, judged.verdict, judged.candidate, payload)
    return GateOutcome(
        judged.verdict,
        judged.candidate,
        judged.champion,
        judged.report,
        report_path,
        judged.plot_path,
        json_path,
    )
