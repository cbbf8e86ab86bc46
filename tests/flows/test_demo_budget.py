"""The demo's training budget: a recipe's own, a classifier's capped for the demo."""

from __future__ import annotations

import pytest

from conveyor.recipe import load_recipe
from flows.demo import CLASSIFIER_STEPS, demo_steps
from testbed.paths import RECIPES_DIR

pytestmark = pytest.mark.unit

RECIPES = RECIPES_DIR


def test_a_classifier_that_asks_for_fewer_steps_than_the_cap_keeps_its_own() -> None:
    # SIB-200 zh on e5: 4 epochs of 701 texts at batch 16 = 176 steps; the cap (400) once
    # made the demo train 9 epochs for an hour and more on 2 cores.
    assert demo_steps(load_recipe(RECIPES / "sib200-zh-e5.yaml")) == 4 * 44


def test_a_long_classifier_recipe_is_capped_for_the_demo() -> None:
    recipe = load_recipe(RECIPES / "clinc150-minilm.yaml")  # 5 epochs of 15,000 texts
    assert recipe.training.planned_steps(15_000) > CLASSIFIER_STEPS
    assert demo_steps(recipe) == CLASSIFIER_STEPS


def test_a_language_model_trains_its_recipe_budget() -> None:
    recipe = load_recipe(RECIPES / "crosswoz-smollm2.yaml")
    assert demo_steps(recipe) == recipe.training.max_steps


def test_planned_steps_count_epochs_processes_and_accumulation() -> None:
    training = load_recipe(RECIPES / "sib200-zh-e5.yaml").training
    assert training.planned_steps(701) == 176
    assert training.planned_steps(701, world=2) == 88
    stepped = training.model_copy(update={"max_steps": 7})
    assert stepped.planned_steps(701) == 7
    accumulated = training.model_copy(update={"gradient_accumulation_steps": 4})
    assert accumulated.planned_steps(701) == 44
