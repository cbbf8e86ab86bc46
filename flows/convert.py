"""Convert a version for llama.cpp and judge it: parity with its parent, then the champion.

Plain wiring of two stages (``conversion`` writes and registers the GGUF version, ``gates``
judges it), shared by ``conveyor convert`` and the retrain flow's convert task;
:func:`judge_derived` is the judging itself, shared with the compressed candidates
(:mod:`flows.compress`). The parity
gate is the chat gates against the parent version with the recipe's ``convert`` tolerances
(headline drop, fact-error rise); the champion gate is the usual one, skipped when the
champion is the parent itself (parity already judged that pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conversion import convert_version
from conveyor.recipe import Recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from gates import GateOutcome, evaluate_version, find_champion

__all__ = [
    "ConvertOutcome",
    "convert_and_judge",
    "judge_derived",
    "parity_overrides",
]


@dataclass(frozen=True)
class ConvertOutcome:
    version: str  # the new version (GGUF, int8 ONNX, a distilled student)
    parent: str
    parity: GateOutcome
    champion: GateOutcome | None
    passed: bool
    reason: str


def parity_overrides(max_headline_drop: float, max_fact_error_rise: float) -> list[str]:
    """The recipe overrides that make the chat gates a parity gate."""
    return [
        f"gates.generation.max_headline_drop={max_headline_drop}",
        f"gates.generation.max_fact_error_rise={max_fact_error_rise}",
    ]


def judge_derived(
    registry: Registry,
    settings: Settings,
    version: str,
    parent: str,
    *,
    parity: Sequence[str],
    against: str = "production",
    out_dir: Path | None = None,
) -> ConvertOutcome:
    """``version`` (made from ``parent``: converted, quantized, distilled) judged against
    ``parent`` with the ``parity`` overrides of the gates, then against ``against``."""
    judged_parity = evaluate_version(
        registry,
        settings,
        version,
        against=parent,
        overrides=parity,
        out_dir=out_dir / "parity" if out_dir else None,
    )
    reason = f"parity with {parent}: {judged_parity.verdict.reason}"
    if not judged_parity.verdict.passed:
        return ConvertOutcome(version, parent, judged_parity, None, False, reason)
    champion_record = find_champion(registry, registry.resolve(version), against)
    if champion_record is None or champion_record.version == parent:
        return ConvertOutcome(version, parent, judged_parity, None, True, reason)
    judged = evaluate_version(
        registry, settings, version, against=champion_record.version, out_dir=out_dir
    )
    return ConvertOutcome(
        version, parent, judged_parity, judged, judged.verdict.passed, judged.verdict.reason
    )


def convert_and_judge(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    quant: str,
    against: str = "production",
    out_dir: Path | None = None,
) -> ConvertOutcome:
    """``ref`` written as GGUF ``quant``, judged against ``ref`` and then ``against``."""
    parent = registry.resolve(ref)
    tolerances = Recipe.model_validate(parent.recipe).convert
    converted = convert_version(registry, settings, parent.version, quant=quant)
    overrides = parity_overrides(tolerances.max_headline_drop, tolerances.max_fact_error_rise)
    return judge_derived(
        registry,
        settings,
        converted.version,
        parent.version,
        parity=overrides,
        against=against,
        out_dir=out_dir,
    )
