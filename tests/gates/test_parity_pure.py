"""The parity gate of a compressed candidate, with plain values: the headline's drop against
the parent within tolerance (its paired interval in the detail), in-scope accuracy as a
headline, speed and size beside quality, a language-model student's perplexity held to the
distil tolerance, and a tolerance that is not a number."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor.errors import ConveyorError
from conveyor.recipe import load_recipe
from conveyor.recipe.schema import GatesSection
from flows.compress import distil_parity
from gates import footprint
from gates.bootstrap import Interval
from gates.chat.decide import GenerationEvaluation, decide_generation
from gates.text.decide import decide
from gates.text.evaluate import _classification_metric
from gates.verdict import Evaluation
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.unit

PARITY = GatesSection(max_headline_drop=0.005, max_macro_f1_drop=0.005, max_class_f1_drop=0.15)


def clf(version: str, accuracy: float) -> Evaluation:
    return Evaluation(
        version,
        "classification",
        metrics={"accuracy": accuracy, "macro_f1": accuracy},
        per_class_f1={"a": accuracy},
    )


def test_a_drop_within_tolerance_passes_and_shows_its_interval() -> None:
    change = Interval(-0.002, -0.006, 0.001, 0.95, 1000)
    verdict = decide(clf("d:v2", 0.948), clf("d:v1", 0.950), PARITY, change)
    assert verdict.passed, verdict.reason
    check = next(c for c in verdict.checks if c.name == "max_headline_drop")
    assert check.outcome == "pass" and check.value == pytest.approx(0.002)
    assert check.detail == (
        "accuracy drop vs d:v1: 0.0020 <= 0.0050 (change -0.0020, 95% CI [-0.0060, +0.0010])"
    )


def test_a_drop_beyond_tolerance_is_refused_with_the_numbers() -> None:
    change = Interval(-0.012, -0.02, -0.004, 0.95, 1000)
    verdict = decide(clf("d:v2", 0.938), clf("d:v1", 0.950), PARITY, change)
    assert not verdict.passed
    assert "accuracy drop vs d:v1: 0.0120 > 0.0050 (change -0.0120" in verdict.reason


def test_without_a_tolerance_no_drop_check_is_made() -> None:
    verdict = decide(clf("d:v2", 0.9), clf("d:v1", 0.9), GatesSection(), None)
    assert "max_headline_drop" not in {c.name for c in verdict.checks}


def test_in_scope_accuracy_leaves_out_the_oos_rows() -> None:
    truth = np.array([0, 0, 1, 1, 2], dtype=np.int64)  # class 2 is oos
    predicted = np.array([0, 1, 1, 1, 0], dtype=np.int64)
    rows = np.arange(5, dtype=np.int64)
    in_scope = _classification_metric(truth, predicted, 3, "in_scope_accuracy", 2)
    overall = _classification_metric(truth, predicted, 3, "accuracy", 2)
    assert in_scope(rows) == pytest.approx(3 / 4)
    assert overall(rows) == pytest.approx(3 / 5)
    assert in_scope(np.array([4, 4], dtype=np.int64)) == 0.0  # a resample of oos rows only


def test_footprint_puts_speed_and_size_beside_each_other() -> None:
    ours = {"p50_ms_batch1": 2.0, "p50_ms_batch32": 20.0, "model_size_mb": 23.0}
    theirs = {"p50_ms_batch1": 4.0, "p50_ms_batch32": 50.0, "model_size_mb": 92.0}
    assert footprint(ours, theirs) == (
        "p50 batch 1 2.0 ms vs 4.0 ms (0.50x); p50 batch 32 20.0 ms vs 50.0 ms (0.40x); "
        "weights 23.0 MB vs 92.0 MB (0.25x)"
    )
    assert footprint(ours, {}) == ""
    answers = {"answer_tokens_per_s": 300.0, "model_size_mb": 270.0}  # a language model's
    assert footprint(answers, {"answer_tokens_per_s": 150.0, "model_size_mb": 540.0}) == (
        "answers 300.0 tokens/s vs 150.0 tokens/s (2.00x); weights 270.0 MB vs 540.0 MB (0.50x)"
    )


def test_a_tolerance_that_is_not_a_number_is_refused_naming_the_key() -> None:
    recipe = REPO_ROOT / "recipes" / "clinc150-minilm.yaml"
    with pytest.raises(ConveyorError, match=r"compress\.quantize\.max_headline_drop"):
        load_recipe(recipe, ["compress.quantize.max_headline_drop=half a point"])
    with pytest.raises(ConveyorError, match=r"compress\.distil\.max_perplexity_increase"):
        load_recipe(recipe, ["compress.distil.max_perplexity_increase=a tenth"])
    with pytest.raises(ConveyorError, match=r"compress\.quantize\.to"):
        load_recipe(recipe.with_name("e2e-smollm2.yaml"), ["compress.quantize.to=onnx-int8"])


def test_a_chat_student_is_held_to_the_distil_perplexity_tolerance_not_the_champions() -> None:
    recipe = load_recipe(REPO_ROOT / "recipes" / "e2e-smollm2.yaml")
    assert recipe.gates.max_perplexity_increase == 0.0  # against a champion: no rise at all
    tolerance = recipe.compress.distil.max_perplexity_increase
    parity = load_recipe(REPO_ROOT / "recipes" / "e2e-smollm2.yaml", distil_parity(recipe))
    assert parity.gates.max_perplexity_increase == tolerance
    teacher = GenerationEvaluation("d:v1", {"rouge_l": 0.50, "perplexity": 4.0})
    within = GenerationEvaluation(
        "d:v2", {"rouge_l": 0.50, "perplexity": 4.0 * (1 + tolerance * 0.9)}
    )
    beyond = GenerationEvaluation(
        "d:v2", {"rouge_l": 0.50, "perplexity": 4.0 * 1.5 * (1 + tolerance)}
    )

    def perplexity_check(student: GenerationEvaluation) -> str:
        verdict = decide_generation(student, teacher, parity.gates)
        return next(c.outcome for c in verdict.checks if c.name == "max_perplexity_increase")

    assert perplexity_check(within) == "pass"
    assert perplexity_check(beyond) == "fail"
    smaller = ["compress.distil.max_perplexity_increase=0.1"]
    tighter = load_recipe(REPO_ROOT / "recipes" / "e2e-smollm2.yaml", smaller)
    assert f"gates.max_perplexity_increase={0.1}" in distil_parity(tighter)
