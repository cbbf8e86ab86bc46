"""Generative gates end to end for one pair of models: run both on the same prompts, judge.

``run_generation`` answers the sampled test prompts (and the golden suite) with one model and
scores what it wrote; ``judge_generation`` turns the candidate's run and the champion's into
:class:`GenerationEvaluation` values, the paired bootstrap interval of the headline metric
over the same prompts, the :class:`Verdict`, and the prompts to show side by side.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from conveyor.chat import Conversation, Message
from conveyor.recipe.schema import GatesSection, GenerationGates, GenerationTaskCheck
from gates.bootstrap import Interval, bootstrap_interval, paired_difference_interval
from gates.chat.decide import GenerationEvaluation, decide_generation
from gates.chat.golden import GoldenCase, GoldenResult, check_golden
from gates.chat.metrics import TextScores, score_texts
from gates.chat.model_io import generate_answers, reference_losses
from gates.chat.side_by_side import SideBySide, most_different
from gates.chat.test_set import PromptGroup
from gates.plugins import checker_for
from gates.verdict import Verdict

__all__ = [
    "GenerationJudgement",
    "GenerationRun",
    "evaluation_of",
    "judge_generation",
    "run_generation",
    "task_hits",
]

Indices = npt.NDArray[np.int64]


@dataclass
class GenerationRun:
    """What one model wrote on the sampled prompts, and its scores."""

    version: str
    answers: list[str] = field(default_factory=list)
    scores: TextScores | None = None
    facts: list[Any] | None = None  # the task plug-in's result per answer
    fact_rates: dict[str, float] = field(default_factory=dict)
    hits: npt.NDArray[np.bool_] | None = None
    nll: float = 0.0
    tokens: int = 0
    golden: list[GoldenResult] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    footprint: dict[str, float] = field(default_factory=dict)  # speed and weights, as metrics
    error: str | None = None


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def task_hits(
    check: GenerationTaskCheck,
    groups: Sequence[PromptGroup],
    answers: Sequence[str],
    pattern: str | None,
) -> npt.NDArray[np.bool_] | None:
    """Per prompt, whether the answer passes an extraction check (None: no such check)."""
    if check is GenerationTaskCheck.EXACT_MATCH:
        hits = [
            _normalized(a) in {_normalized(r) for r in g.references}
            for g, a in zip(groups, answers, strict=True)
        ]
    elif check is GenerationTaskCheck.REGEX and pattern is not None:
        compiled = re.compile(pattern)
        hits = [compiled.search(a) is not None for a in answers]
    else:
        return None
    return np.asarray(hits, dtype=bool)


def _conversations(groups: Sequence[PromptGroup]) -> list[Conversation]:
    return [
        Conversation((*g.prompt, Message("assistant", ref)), 0)
        for g in groups
        for ref in g.references
    ]


def run_generation(
    version: str,
    model: Any,
    tokenizer: Any,
    groups: Sequence[PromptGroup],
    *,
    generation: GenerationGates,
    golden: Sequence[GoldenCase] = (),
    max_length: int,
    reference_loss: bool = True,
) -> GenerationRun:
    """Answer, score, check facts or the task, the golden suite and the references' loss.

    ``reference_loss=False`` skips the perplexity pass (benchmarks that judge the text only).
    """
    run = GenerationRun(version)
    started = time.perf_counter()
    prompts = [g.prompt for g in groups]
    asked: dict[str, Any] = {
        "max_new_tokens": generation.max_new_tokens,
        "batch_size": generation.batch_size,
    }
    what = f"{version}: test answers generated"
    run.answers = generate_answers(model, tokenizer, prompts, **asked, what=what)
    elapsed = time.perf_counter() - started
    run.seconds["generate_s"] = round(elapsed, 2)
    if run.answers and elapsed > 0:
        written = tokenizer(run.answers, add_special_tokens=False)["input_ids"]
        run.footprint["answer_tokens_per_s"] = sum(len(ids) for ids in written) / elapsed
    run.scores = score_texts(run.answers, [g.references for g in groups], generation.language)
    checker = checker_for(generation.task_check)
    if checker is not None:
        run.facts = [
            checker.check(g.last_user_text, a) for g, a in zip(groups, run.answers, strict=True)
        ]
        run.fact_rates = checker.rates(run.facts)
    run.hits = task_hits(generation.task_check, groups, run.answers, generation.pattern)
    if golden:
        answers = generate_answers(model, tokenizer, [c.messages for c in golden], **asked)
        run.golden = check_golden(golden, answers)
    if not reference_loss:
        return run
    started = time.perf_counter()
    nll, counts = reference_losses(
        model,
        tokenizer,
        _conversations(groups),
        max_length=max_length,
        batch_size=generation.batch_size,
    )
    run.nll, run.tokens = float(nll.sum()), int(counts.sum())
    run.seconds["perplexity_s"] = round(time.perf_counter() - started, 2)
    return run


def evaluation_of(run: GenerationRun) -> GenerationEvaluation:
    """The run's metrics as plain values for :func:`decide_generation`."""
    if run.error is not None or run.scores is None:
        return GenerationEvaluation(run.version, error=run.error or "not evaluated")
    metrics = {
        "bleu": run.scores.bleu(),
        "rouge_l": run.scores.mean_rouge_l(),
        "chrf": run.scores.chrf(),
        "prompts": float(len(run.scores)),
    }
    metrics |= run.fact_rates
    metrics |= run.footprint
    if run.hits is not None:
        metrics["task_accuracy"] = float(run.hits.mean()) if len(run.hits) else 0.0
    if run.tokens:
        metrics["perplexity"] = math.exp(run.nll / run.tokens)
    golden = None
    if run.golden is not None:
        golden = tuple(f"{r.name}: {', '.join(r.failures)}" for r in run.golden if not r.passed)
    return GenerationEvaluation(run.version, metrics, golden)


@dataclass(frozen=True)
class GenerationJudgement:
    verdict: Verdict
    candidate: GenerationEvaluation
    champion: GenerationEvaluation | None
    interval: Interval | None
    side_by_side: list[SideBySide]


def _metric(scores: TextScores, name: str) -> Any:
    return lambda rows: scores.metric(name, rows)


def judge_generation(
    candidate: GenerationRun,
    champion: GenerationRun | None,
    groups: Sequence[PromptGroup],
    gates: GatesSection,
) -> GenerationJudgement:
    """Evaluations, the headline's intervals on the same prompts, the verdict, side by side."""
    headline = gates.generation.headline_metric
    ours = evaluation_of(candidate)
    theirs = evaluation_of(champion) if champion is not None else None
    interval = gain = None
    rows: list[SideBySide] = []
    samples = {"samples": gates.bootstrap_samples}
    if candidate.scores is not None:
        interval = bootstrap_interval(
            _metric(candidate.scores, headline), len(candidate.scores), **samples
        )
    if champion is not None and champion.scores is not None and candidate.scores is not None:
        gain = paired_difference_interval(
            _metric(candidate.scores, headline),
            _metric(champion.scores, headline),
            len(candidate.scores),
            **samples,
        )
        rows = most_different(
            [g.last_user_text for g in groups],
            [g.references for g in groups],
            champion.answers,
            candidate.answers,
            champion.scores.rouge_l.tolist(),
            candidate.scores.rouge_l.tolist(),
            gates.generation.side_by_side,
        )
    verdict = decide_generation(ours, theirs, gates, gain)
    return GenerationJudgement(verdict, ours, theirs, interval, rows)
