"""``decide_generation``: a generative candidate (and its champion) against the recipe's gates.

Pure, like :func:`gates.text.decide.decide`, and assembled the same way
(:func:`gates.verdict.GateKind`) into the same :class:`Verdict`: floors and
ceilings on what the candidate wrote (BLEU, ROUGE-L, chrF, fact omission and hallucination rates,
task accuracy, perplexity), the golden suite passing whole, and against the champion (the
base model itself, zero-shot, for the first version of a deployment) the headline metric's
drop, the perplexity rise and, when the recipe asks, a gain beyond the paired interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.recipe.schema import GatesSection
from gates.verdict import GateCheck, GateKind, at_least, at_most, perplexity_rise

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
    ("min_chrf", "chrf", "chrF"),
    ("min_task_accuracy", "task_accuracy", "task accuracy"),
)
_CEILINGS = (
    ("max_omission_rate", "omission_rate", "share of answers omitting a fact"),
    ("max_hallucination_rate", "hallucination_rate", "share of answers contradicting a fact"),
    ("max_echo_rate", "echo_rate", "share of answers echoing the structured input"),
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
    rise = gates.generation.max_fact_error_rise
    for _key, metric, what in _CEILINGS:
        if rise is not None and metric in candidate.metrics and metric in champion.metrics:
            change = candidate.metrics[metric] - champion.metrics[metric]
            name = f"max_fact_error_rise:{metric}"
            found.append(at_most(name, change, rise, f"rise of the {what}"))
    if "perplexity" in candidate.metrics and "perplexity" in champion.metrics:
        ours, theirs = candidate.metrics["perplexity"], champion.metrics["perplexity"]
        ceiling = gates.max_perplexity_increase
        found.append(perplexity_rise(ours, theirs, ceiling, champion.version))
    return found


def _headline(_: GenerationEvaluation, gates: GatesSection) -> str:
    return gates.generation.headline_metric


decide_generation = GateKind(_threshold_checks, _regressions, _headline, alone="no champion")
"""``decide_generation(candidate, champion, gates, gain=None) -> Verdict``: ``gain`` is the
paired interval of the headline, candidate minus champion."""
