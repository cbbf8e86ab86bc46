"""The student's learning rate: a LoRA teacher's rate is for adapters, not full weights."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.errors import RecipeError
from conveyor.recipe import load_recipe
from conveyor.recipe.compress import FULL_WEIGHTS_LR
from conveyor.registry import VersionRecord
from testbed.paths import RECIPES_DIR
from training.distil_version import student_recipe

pytestmark = pytest.mark.unit


def _teacher(recipe_file: str) -> VersionRecord:
    stored = load_recipe(RECIPES_DIR / recipe_file).model_dump(mode="json")  # as registered
    return VersionRecord(
        "t:v1", "t", 1, "causal-lm", "base", None, None, stored, {}, None, "passed",
        datetime.now(UTC), "test",
    )  # fmt: skip


def test_a_lora_teachers_student_trains_full_weights_at_a_full_weights_rate() -> None:
    teacher = _teacher("e2e-smollm2.yaml")  # LoRA at 2e-3
    student = student_recipe(teacher, 15, [])
    assert teacher.recipe["training"]["lr"] == pytest.approx(2e-3)
    assert not student.training.lora.enabled
    assert student.training.lr == FULL_WEIGHTS_LR


def test_a_full_weight_teachers_student_keeps_its_rate_and_the_setting_and_set_win() -> None:
    teacher = _teacher("clinc150-minilm.yaml")  # full weights at 1e-4
    assert student_recipe(teacher, 3, []).training.lr == pytest.approx(1e-4)
    asked = student_recipe(teacher, 3, ["compress.distil.lr=2e-5"])
    assert asked.training.lr == pytest.approx(2e-5)
    forced = student_recipe(teacher, 3, ["compress.distil.lr=2e-5", "training.lr=3e-5"])
    assert forced.training.lr == pytest.approx(3e-5)


def test_a_student_rate_that_is_not_a_rate_is_refused_naming_the_field() -> None:
    with pytest.raises(RecipeError, match=r"compress\.distil\.lr"):
        student_recipe(_teacher("clinc150-minilm.yaml"), 3, ["compress.distil.lr=fast"])
