"""Evaluate a candidate and the champion on the same test split, in the same run.

``run_model`` loads and runs one model (never raises for a bad artifact: the
error is kept); ``score_pair`` turns both runs into :class:`Evaluation` values over
one shared label list, with bootstrap intervals and the paired gain interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from conveyor.recipe import Recipe, Task
from conveyor.recipe.schema import GatesSection
from conveyor.splits import read_split
from gates.bootstrap import Interval, bootstrap_interval, paired_difference_interval
from gates.text.model_io import (
    ArtifactError,
    Predictions,
    generate_samples,
    latency_profile,
    load_model,
    model_size_mb,
    predict_classes,
    token_losses,
)
from gates.text.scoring import ClassificationScores, confusion, macro_f1, score_classification
from gates.verdict import Evaluation

__all__ = ["ModelRun", "TestSet", "read_test_set", "run_model", "score_pair"]

Indices = npt.NDArray[np.int64]
SAMPLE_PROMPTS = 3


@dataclass(frozen=True)
class TestSet:
    path: Path
    texts: list[str]
    labels: list[str] | None


@dataclass
class ModelRun:
    version: str
    task: str
    error: str | None = None
    label_names: tuple[str, ...] = ()
    predictions: Predictions | None = None
    nll: npt.NDArray[np.float64] | None = None
    token_counts: npt.NDArray[np.int64] | None = None
    samples: list[str] = field(default_factory=list)
    serving: dict[str, float] = field(default_factory=dict)
    scores: ClassificationScores | None = None


def read_test_set(recipe: Recipe) -> TestSet:
    """The test split (classification) or, when a causal-lm recipe has none, validation."""
    path = recipe.data.test or recipe.data.validation
    frame = read_split(path)
    texts = frame[recipe.data.text_field].astype("str").tolist()
    labels = None
    if recipe.task is Task.CLASSIFICATION and recipe.data.label_field:
        labels = frame[recipe.data.label_field].astype("str").tolist()
    return TestSet(path, texts, labels)


def run_model(
    version: str, artifact: str | None, task: Task, test: TestSet, max_length: int
) -> ModelRun:
    """Load and run one model over the test set; an unloadable artifact is recorded, not raised."""
    run = ModelRun(version, str(task))
    try:
        loaded = load_model(artifact, str(task))
    except ArtifactError as exc:
        run.error = str(exc)
        return run
    if task is Task.CAUSAL_LM:
        what = f"{version}: test texts scored"
        run.nll, run.token_counts = token_losses(loaded, test.texts, max_length, what=what)
        prompts = [text[:40] for text in test.texts[:SAMPLE_PROMPTS]]
        run.samples = generate_samples(loaded, prompts)
    else:
        run.label_names = loaded.label_names or ()
        what = f"{version}: test examples classified"
        run.predictions = predict_classes(loaded, test.texts, max_length, what=what)
    run.serving = latency_profile(loaded, test.texts, max_length)
    run.serving["model_size_mb"] = model_size_mb(loaded.folder)
    return run


def _ids(names: list[str], index: dict[str, int]) -> npt.NDArray[np.int64]:
    return np.array([index[name] for name in names], dtype=np.int64)


def _classification_metric(
    truth: Indices, predicted: Indices, classes: int, metric: str, oos: int | None
) -> Callable[[Indices], float]:
    """The headline metric over the test rows ``rows`` (a resample, for the intervals).
    ``in_scope_accuracy`` counts the rows whose truth is not ``oos`` (all rows without one)."""

    def score(rows: Indices) -> float:
        if metric == "in_scope_accuracy":
            kept = rows[truth[rows] != oos] if oos is not None else rows
            return float((truth[kept] == predicted[kept]).mean()) if len(kept) else 0.0
        if metric == "accuracy":
            return float((truth[rows] == predicted[rows]).mean())
        matrix = confusion(truth[rows], predicted[rows], classes)
        return macro_f1(matrix)

    return score


def _lm_metric(run: ModelRun) -> Callable[[Indices], float]:
    assert run.nll is not None and run.token_counts is not None
    nll, counts = run.nll, run.token_counts

    def score(rows: Indices) -> float:
        # Negative perplexity: bigger is better, like accuracy, so gains are positive.
        tokens = counts[rows].sum()
        return -float(np.exp(nll[rows].sum() / tokens)) if tokens else float("-inf")

    return score


def _score_classification(
    run: ModelRun, test: TestSet, labels: list[str], gates: GatesSection
) -> tuple[Evaluation, Callable[[Indices], float]]:
    assert test.labels is not None and run.predictions is not None
    index = {name: i for i, name in enumerate(labels)}
    truth, predicted = _ids(test.labels, index), _ids(run.predictions.labels, index)
    known = set(run.label_names)
    unknown = dict(Counter(label for label in test.labels if label not in known))
    run.scores = score_classification(
        truth,
        predicted,
        run.predictions.confidence,
        labels,
        oos_label=gates.oos_label,
        unknown_labels=unknown,
    )
    oos = index.get(gates.oos_label) if gates.oos_label else None
    metric = _classification_metric(truth, predicted, len(labels), gates.headline_metric, oos)
    evaluation = Evaluation(
        run.version,
        run.task,
        metrics={**run.scores.headline(), **run.serving},
        per_class_f1=run.scores.per_class_f1,
        unknown_labels=unknown,
    )
    return evaluation, metric


def _score_lm(run: ModelRun) -> tuple[Evaluation, Callable[[Indices], float]]:
    assert run.nll is not None and run.token_counts is not None
    tokens = int(run.token_counts.sum())
    ppl = float(np.exp(run.nll.sum() / tokens)) if tokens else float("inf")
    metrics = {"perplexity": ppl, "eval_tokens": float(tokens), **run.serving}
    return Evaluation(run.version, run.task, metrics=metrics), _lm_metric(run)


def _with_interval(evaluation: Evaluation, interval: Interval) -> Evaluation:
    return Evaluation(
        evaluation.version,
        evaluation.task,
        evaluation.metrics,
        evaluation.per_class_f1,
        evaluation.unknown_labels,
        interval,
        evaluation.error,
    )


def score_pair(
    test: TestSet, candidate: ModelRun, champion: ModelRun | None, gates: GatesSection
) -> tuple[Evaluation, Evaluation | None, Interval | None]:
    """Both models' evaluations on one label list, their intervals, and the paired gain."""
    runs = [run for run in (candidate, champion) if run is not None and run.error is None]
    labels = sorted(set(test.labels or []).union(*(set(r.label_names) for r in runs)))
    scored: dict[str, tuple[Evaluation, Callable[[Indices], float]]] = {}
    for run in runs:
        if run.task == "causal-lm":
            scored[run.version] = _score_lm(run)
        else:
            scored[run.version] = _score_classification(run, test, labels, gates)
    size, samples = len(test.texts), gates.bootstrap_samples

    def finish(run: ModelRun | None) -> Evaluation | None:
        if run is None:
            return None
        if run.error is not None:
            return Evaluation(run.version, run.task, error=run.error)
        evaluation, metric = scored[run.version]
        interval = bootstrap_interval(metric, size, samples=samples)
        if run.task == "causal-lm":  # report perplexity itself, not its negative
            interval = Interval(
                -interval.estimate, -interval.high, -interval.low, interval.confidence, samples
            )
        return _with_interval(evaluation, interval)

    gain = None
    if champion is not None and candidate.version in scored and champion.version in scored:
        gain = paired_difference_interval(
            scored[candidate.version][1], scored[champion.version][1], size, samples=samples
        )
    return (
        finish(candidate) or Evaluation(candidate.version, candidate.task),
        finish(champion),
        gain,
    )
