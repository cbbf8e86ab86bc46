"""``decide`` with plain values: thresholds, regressions, significance, broken artifacts."""

from __future__ import annotations

import pytest

from conveyor.recipe.schema import GatesSection
from gates.bootstrap import Interval
from gates.text.decide import decide
from gates.verdict import Evaluation

pytestmark = pytest.mark.unit

GATES = GatesSection(min_accuracy=0.80, max_macro_f1_drop=0.01, max_class_f1_drop=0.10)


def clf(version: str, accuracy: float, macro: float, **per_class: float) -> Evaluation:
    return Evaluation(
        version,
        "classification",
        metrics={"accuracy": accuracy, "macro_f1": macro, "p99_ms_batch1": 12.0},
        per_class_f1=per_class or {"a": macro, "b": macro},
    )


def test_first_model_is_judged_on_thresholds_alone() -> None:
    verdict = decide(clf("d:v1", 0.9, 0.88), None, GATES)
    assert verdict.passed
    assert verdict.reason == "pass: all 1 checks passed (first model: judged on thresholds alone)"
    assert [(c.name, c.outcome) for c in verdict.checks] == [("min_accuracy", "pass")]
    check = verdict.checks[0]
    assert (check.value, check.threshold, check.comparison) == (0.9, 0.80, ">=")


def test_below_threshold_fails_with_value_and_threshold_in_the_reason() -> None:
    verdict = decide(clf("d:v1", 0.7, 0.6), None, GATES)
    assert not verdict.passed
    assert verdict.reason == "fail: accuracy 0.7000 < 0.8000"


def test_macro_f1_regression_against_the_champion_fails() -> None:
    verdict = decide(clf("d:v2", 0.90, 0.85), clf("d:v1", 0.91, 0.90), GATES)
    assert not verdict.passed
    assert "macro-F1 drop vs d:v1 0.05 > 0.01" in verdict.reason


def test_one_collapsing_class_fails_even_when_macro_f1_holds() -> None:
    candidate = clf("d:v2", 0.9, 0.9, a=0.95, b=0.60, c=1.0, d=1.0)
    champion = clf("d:v1", 0.9, 0.9, a=0.90, b=0.85, c=0.95, d=0.95)
    verdict = decide(candidate, champion, GATES)
    assert not verdict.passed
    assert "worst class F1 drop ('b') 0.25 > 0.1" in verdict.reason


def test_better_candidate_passes_against_the_champion() -> None:
    verdict = decide(clf("d:v2", 0.93, 0.92), clf("d:v1", 0.91, 0.90), GATES)
    assert verdict.passed and verdict.champion == "d:v1"
    assert verdict.reason == "pass: all 3 checks passed against champion d:v1"


def test_significance_requires_the_interval_above_zero() -> None:
    gates = GATES.model_copy(update={"require_significant_gain": True})
    noise = Interval(0.001, -0.004, 0.006, 0.95, 1000)
    verdict = decide(clf("d:v2", 0.911, 0.901), clf("d:v1", 0.91, 0.90), gates, noise)
    assert not verdict.passed
    assert "includes 0: not better beyond noise" in verdict.reason
    real = Interval(0.02, 0.01, 0.03, 0.95, 1000)
    assert decide(clf("d:v2", 0.93, 0.92), clf("d:v1", 0.91, 0.90), gates, real).passed


def test_unloadable_candidate_fails_loudly() -> None:
    broken = Evaluation("d:v2", "classification", error="artifact missing: /x does not exist")
    verdict = decide(broken, clf("d:v1", 0.9, 0.9), GATES)
    assert not verdict.passed
    assert verdict.reason == "fail: artifact unloadable: artifact missing: /x does not exist"


def test_broken_champion_does_not_block_a_good_candidate() -> None:
    broken = Evaluation("d:v1", "classification", error="cannot load")
    verdict = decide(clf("d:v2", 0.9, 0.9), broken, GATES)
    assert verdict.passed
    assert "champion d:v1 could not be evaluated" in verdict.reason
    assert [c.outcome for c in verdict.checks] == ["pass", "warn"]


def test_unknown_test_labels_are_reported_as_a_warning() -> None:
    candidate = Evaluation(
        "d:v1",
        "classification",
        metrics={"accuracy": 0.85, "macro_f1": 0.8},
        unknown_labels={"new_intent": 7},
    )
    verdict = decide(candidate, None, GATES)
    assert verdict.passed
    warn = [c for c in verdict.checks if c.outcome == "warn"]
    assert (
        warn
        and "7 test examples have labels the model does not know (new_intent)" in warn[0].detail
    )


def test_budgets_and_language_model_gates() -> None:
    gates = GatesSection(max_perplexity=50, max_perplexity_increase=0.05, max_p99_latency_ms=10)
    lm = Evaluation("s:v2", "causal-lm", metrics={"perplexity": 40.0, "p99_ms_batch1": 12.0})
    champion = Evaluation("s:v1", "causal-lm", metrics={"perplexity": 35.0})
    verdict = decide(lm, champion, gates)
    assert not verdict.passed
    assert "p99 latency (ms) 12 > 10" in verdict.reason
    assert "perplexity rise vs s:v1 (relative) 0.1429 > 0.05" in verdict.reason


def test_in_scope_accuracy_floor_ignores_out_of_scope_examples() -> None:
    gates = GatesSection(min_in_scope_accuracy=0.9)
    candidate = Evaluation(
        "d:v1",
        "classification",
        metrics={"accuracy": 0.74, "macro_f1": 0.7, "in_scope_accuracy": 0.91, "oos_recall": 0.0},
    )
    verdict = decide(candidate, None, gates)
    assert verdict.passed and [c.name for c in verdict.checks] == ["min_in_scope_accuracy"]
    low = Evaluation("d:v1", "classification", metrics={"accuracy": 0.9, "in_scope_accuracy": 0.8})
    assert decide(low, None, gates).reason == "fail: in-scope accuracy 0.8000 < 0.9000"
