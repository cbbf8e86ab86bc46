"""Scores and intervals from plain arrays, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from gates.bootstrap import bootstrap_interval, paired_difference_interval
from gates.text.scoring import (
    confusion,
    expected_calibration_error,
    f1_per_class,
    perplexity,
    score_classification,
)

pytestmark = pytest.mark.unit


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_confusion_and_f1_match_hand_counts() -> None:
    truth, predicted = arr(0, 0, 1, 1, 2), arr(0, 1, 1, 1, 0)
    matrix = confusion(truth, predicted, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: 0
    assert f1_per_class(matrix).tolist() == pytest.approx([0.5, 0.8, 0.0])


def test_classification_scores_with_out_of_scope() -> None:
    labels = ["a", "b", "oos"]
    truth, predicted = arr(0, 1, 2, 2, 0), arr(0, 2, 2, 0, 0)
    confidence = np.array([0.9, 0.6, 0.8, 0.7, 0.95])
    scores = score_classification(truth, predicted, confidence, labels, oos_label="oos")
    assert scores.accuracy == pytest.approx(3 / 5)
    assert scores.in_scope_accuracy == pytest.approx(2 / 3)  # a, b, a: b was missed
    assert scores.oos_recall == pytest.approx(1 / 2)
    assert scores.oos_precision == pytest.approx(1 / 2)
    assert set(scores.per_class_f1) == {"a", "b", "oos"}
    assert scores.headline()["oos_recall"] == pytest.approx(0.5)


def test_classes_absent_from_truth_do_not_dilute_macro_f1() -> None:
    labels = ["a", "b", "never"]
    scores = score_classification(arr(0, 1), arr(0, 1), np.array([1.0, 1.0]), labels)
    assert scores.macro_f1 == 1.0 and "never" not in scores.per_class_f1
    assert scores.oos_recall is None


def test_expected_calibration_error() -> None:
    confident_and_right = expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True]))
    assert confident_and_right == pytest.approx(0.0)
    overconfident = expected_calibration_error(np.array([0.95, 0.95]), np.array([False, True]))
    assert overconfident == pytest.approx(0.45)


def test_perplexity_is_exp_of_mean_token_nll() -> None:
    assert perplexity(np.array([2.0, 4.0]), arr(2, 4)) == pytest.approx(np.exp(1.0))


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_size() -> None:
    rng = np.random.default_rng(1)
    small = rng.random(100) < 0.8
    large = rng.random(5000) < 0.8
    narrow = bootstrap_interval(lambda rows: float(large[rows].mean()), len(large), samples=300)
    wide = bootstrap_interval(lambda rows: float(small[rows].mean()), len(small), samples=300)
    assert wide.low <= wide.estimate <= wide.high
    assert (narrow.high - narrow.low) < (wide.high - wide.low) / 3


def test_paired_difference_sees_a_real_gain_and_not_noise() -> None:
    rng = np.random.default_rng(2)
    base = rng.random(2000) < 0.80
    better = base | (rng.random(2000) < 0.25)  # fixes a quarter of the errors
    noisy = base.copy()
    noisy[:2] = ~noisy[:2]  # flips two answers: noise
    gain = paired_difference_interval(
        lambda r: float(better[r].mean()), lambda r: float(base[r].mean()), 2000, samples=300
    )
    assert gain.low > 0
    tie = paired_difference_interval(
        lambda r: float(noisy[r].mean()), lambda r: float(base[r].mean()), 2000, samples=300
    )
    assert tie.low <= 0 <= tie.high
