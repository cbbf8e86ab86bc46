"""Convert a version for llama.cpp and judge it: parity with its parent, then the champion.

Plain wiring of two stages (``conversion`` writes and registers the GGUF version, ``gates``
judges it), shared by ``conveyor convert`` and the retrain flow's convert task. The parity
gate is the chat gates against the parent version with the recipe's ``convert`` tolerances
(headline drop, fact-error rise); the champion gate is the usual one, skipped when the
champion is the parent itself (parity already judged that pair).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conversion import convert_version
from conveyor.recipe import Recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from gates import GateOutcome, evaluate_version, find_champion

__all__ = ["ConvertOutcome", "convert_and_judge", "parity_overrides"]


@dataclass(frozen=True)
class ConvertOutcome:
    version: str  # the new GGUF version
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
    parity = evaluate_version(
        registry,
        settings,
        converted.version,
        against=parent.version,
        overrides=parity_overrides(tolerances.max_headline_drop, tolerances.max_fact_error_rise),
        out_dir=out_dir / "parity" if out_dir else None,
    )
    if not parity.verdict.passed:
        reason = f"parity with {parent.version}: {parity.verdict.reason}"
        return ConvertOutcome(converted.version, parent.version, parity, None, False, reason)
    champion_record = find_champion(registry, converted, against)
    if champion_record is None or champion_record.version == parent.version:
        reason = f"parity with {parent.version}: {parity.verdict.reason}"
        return ConvertOutcome(converted.version, parent.version, parity, None, True, reason)
    judged = evaluate_version(
        registry, settings, converted.version, against=champion_record.version, out_dir=out_dir
    )
    return ConvertOutcome(
        converted.version,
        parent.version,
        parity,
        judged,
        judged.verdict.passed,
        judged.verdict.reason,
    )
