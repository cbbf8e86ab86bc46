"""Accuracy and macro-F1 against values worked out by hand."""

from __future__ import annotations

import pytest

from training.metrics import accuracy, macro_f1

pytestmark = pytest.mark.unit


def test_accuracy() -> None:
    assert accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75
    assert accuracy([], []) == 0.0


def test_macro_f1_by_hand() -> None:
    # class 0: tp 1 fp 0 fn 0 -> 1.0; class 1: tp 1 fp 1 fn 0 -> 2/3; class 2: tp 1 fp 0 fn 1 -> 2/3
    assert macro_f1([0, 1, 1, 2], [0, 1, 2, 2]) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_macro_f1_counts_a_class_only_predicted() -> None:
    # class 0: tp 1 -> 1.0 ... class 1 is predicted but never gold: f1 0
    assert macro_f1([0, 1], [0, 0]) == pytest.approx((2 / 3 + 0.0) / 2)
