"""``decide_generation``: a generative candidate (and its champion) against the recipe's gates.

Pure, like :func:`gates.text.decide.decide`, and with the same :class:`Verdict`: floors and
ceilings on what the candidate wrote (BLEU, ROUGE-L, fact omission and hallucination rates,
task accuracy, perplexity), the golden suite passing whole, and against the champion (the
base model itself, zero-shot, for the first version of a deployment) the headline metric's
drop, the perplexity rise and, when the recipe asks, a gain beyond the paired interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.recipe.schema import GatesSection
from gates.bootstrap import Interval
from gates.text.decide import GateCheck, Verdict, at_least, at_most, significance

__all__ = ["GenerationEvaluation", "decide_generation"]


@dataclass(frozen=True)
class GenerationEvaluation:
    """One model's answers scored; ``golden_failures`` is None when there is no suite."""

    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    golden_failures: tuple[str, ...] | None = None
    error: str | None = None


_FLOORS = (
    ("min_bleu", "bleu", "BLEU"),
    ("min_rouge_l", "rouge_l", "ROUGE-L"),
    ("min_task_accuracy", "task_accuracy", "task accuracy"),
)
_CEILINGS = (
    ("max_omission_rate", "omission_rate", "share of answers omitting a fact"),
    ("max_hallucination_rate", "hallucination_rate", "share of answers contradicting a fact"),
)


def _threshold_checks(candidate: GenerationEvaluation, gates: GatesSection) -> list[GateCheck]:
    m, generation = candidate.metrics, gates.generation
    found: list[GateCheck] = []
    for key, metric, what in _FLOORS:
        floor = getattr(generation, key)
        if floor is not None and metric in m:
            found.append(at_least(key, m[metric], floor, what))
    for key, metric, what in _CEILINGS:
        ceiling = getattr(generation, key)
        if ceiling is not None and metric in m:
            found.append(at_most(key, m[metric], ceiling, what))
    if gates.max_perplexity is not None and "perplexity" in m:
        what = "perplexity of the references"
        found.append(at_most("max_perplexity", m["perplexity"], gates.max_perplexity, what))
    if candidate.golden_failures is not None:
        failed = candidate.golden_failures
        detail = (
            f"golden suite: {len(failed)} case(s) failed: {'; '.join(failed[:5])}"
            if failed
            else "golden suite: every case passed"
        )
        outcome = "fail" if failed else "pass"
        found.append(GateCheck("golden_suite", float(len(failed)), 0.0, "<=", outcome, detail))
    return found


def _regressions(
    candidate: GenerationEvaluation, champion: GenerationEvaluation, gates: GatesSection
) -> list[GateCheck]:
    headline = gates.generation.headline_metric
    found: list[GateCheck] = []
    if headline in candidate.metrics and headline in champion.metrics:
        drop = champion.metrics[headline] - candidate.metrics[headline]
        what = f"{headline} drop vs {champion.version}"
        found.append(at_most("max_headline_drop", drop, gates.generation.max_headline_drop, what))
    if "perplexity" in candidate.metrics and "perplexity" in champion.metrics:
        rise = candidate.metrics["perplexity"] / champion.metrics["perplexity"] - 1
        what = f"perplexity rise vs {champion.version} (relative)"
        found.append(at_most("max_perplexity_increase", rise, gates.max_perplexity_increase, what))
    return found


def _reason(checks: list[GateCheck], champion: GenerationEvaluation | None, compared: bool) -> str:
    failed = [c for c in checks if c.failed]
    if failed:
        return "fail: " + "; ".join(c.detail for c in failed)
    if champion is None:
        return f"pass: all {len(checks)} checks passed (no champion: judged on thresholds alone)"
    if not compared:
        return (
            f"pass: all {len(checks)} checks passed; "
            f"champion {champion.version} could not be evaluated"
        )
    return f"pass: all {len(checks)} checks passed against champion {champion.version}"


def decide_generation(
    candidate: GenerationEvaluation,
    champion: GenerationEvaluation | None,
    gates: GatesSection,
    gain: Interval | None = None,
) -> Verdict:
    """Judge ``candidate``; ``gain``: paired interval of the headline, candidate - champion."""
    headline = gates.generation.headline_metric
    champ_name = champion.version if champion else None
    if candidate.error is not None:
        check = GateCheck("artifact_loads", None, None, "", "fail", candidate.error)
        reason = f"fail: artifact unloadable: {candidate.error}"
        return Verdict(candidate.version, champ_name, False, reason, [check], headline)
    checks = _threshold_checks(candidate, gates)
    compared = champion is not None and champion.error is None
    if champion is not None and champion.error is not None:
        detail = f"champion {champion.version} could not be evaluated: {champion.error}"
        checks.append(GateCheck("champion_evaluated", None, None, "", "warn", detail))
    if compared and champion is not None:
        checks += _regressions(candidate, champion, gates)
        if gates.require_significant_gain:
            checks.append(significance(gain, headline, champion.version))
    passed = not any(c.failed for c in checks)
    return Verdict(
        candidate.version,
        champ_name,
        passed,
        _reason(checks, champion, compared),
        checks,
        headline,
        gain if compared else None,
    )
