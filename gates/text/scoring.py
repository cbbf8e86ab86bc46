"""Scores from predictions: pure numpy, no model, no I/O.

Classification works on integer class ids over one shared label list (the test
split's labels plus any the model knows), so candidate and champion are scored on
exactly the same terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ClassificationScores",
    "confusion",
    "expected_calibration_error",
    "f1_per_class",
    "macro_f1",
    "perplexity",
    "score_classification",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ECE_BINS = 15


def confusion(truth: IntArray, predicted: IntArray, classes: int) -> IntArray:
    """``matrix[t, p]`` = how many examples of class t were predicted as p."""
    flat = np.bincount(truth * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes).astype(np.int64)


def f1_per_class(matrix: IntArray) -> FloatArray:
    true_pos = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(denominator > 0, 2 * true_pos / denominator, 0.0)
    return scores.astype(np.float64)


def macro_f1(matrix: IntArray, present: npt.NDArray[np.bool_] | None = None) -> float:
    """Mean F1 over the classes present in the truth (the usual test-set convention)."""
    support = matrix.sum(axis=1) > 0 if present is None else present
    scores = f1_per_class(matrix)
    return float(scores[support].mean()) if support.any() else 0.0


def expected_calibration_error(confidence: FloatArray, correct: npt.NDArray[np.bool_]) -> float:
    """ECE over equal-width confidence bins: sum of |accuracy - confidence| weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    total = 0.0
    for index in range(ECE_BINS):
        members = bins == index
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            total += members.mean() * gap
    return float(total)


def perplexity(nll_sums: FloatArray, token_counts: IntArray) -> float:
    tokens = int(token_counts.sum())
    return float(np.exp(nll_sums.sum() / tokens)) if tokens else float("inf")


@dataclass(frozen=True)
class ClassificationScores:
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]
    ece: float
    in_scope_accuracy: float | None
    oos_recall: float | None
    oos_precision: float | None
    unknown_labels: dict[str, int]

    def headline(self) -> dict[str, float]:
        values = {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "ece": self.ece}
        optional = {
            "in_scope_accuracy": self.in_scope_accuracy,
            "oos_recall": self.oos_recall,
            "oos_precision": self.oos_precision,
        }
        values.update({k: v for k, v in optional.items() if v is not None})
        return values


def _oos_scores(
    truth: IntArray, predicted: IntArray, oos: int
) -> tuple[float | None, float | None, float | None]:
    in_scope = truth != oos
    in_scope_accuracy = (
        float((predicted[in_scope] == truth[in_scope]).mean()) if in_scope.any() else None
    )
    is_oos = ~in_scope
    recall = float((predicted[is_oos] == oos).mean()) if is_oos.any() else None
    flagged = predicted == oos
    precision = float((truth[flagged] == oos).mean()) if flagged.any() else 0.0
    return in_scope_accuracy, recall, precision


def score_classification(
    truth: IntArray,
    predicted: IntArray,
    confidence: FloatArray,
    labels: Sequence[str],
    *,
    oos_label: str | None = None,
    unknown_labels: dict[str, int] | None = None,
) -> ClassificationScores:
    """Every classification figure the gates and the report use, from one set of predictions."""
    classes = len(labels)
    matrix = confusion(truth, predicted, classes)
    per_class = f1_per_class(matrix)
    present = matrix.sum(axis=1) > 0
    correct = truth == predicted
    oos = list(labels).index(oos_label) if oos_label and oos_label in labels else None
    in_scope, recall, precision = (
        (None, None, None) if oos is None else _oos_scores(truth, predicted, oos)
    )
    return ClassificationScores(
        accuracy=float(correct.mean()) if len(truth) else 0.0,
        macro_f1=macro_f1(matrix, present),
        per_class_f1={labels[i]: float(per_class[i]) for i in range(classes) if present[i]},
        confusion=matrix.tolist(),
        labels=list(labels),
        ece=expected_calibration_error(confidence, correct),
        in_scope_accuracy=in_scope,
        oos_recall=recall,
        oos_precision=precision,
        unknown_labels=dict(unknown_labels or {}),
    )
