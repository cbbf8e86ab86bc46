"""The demo's training budget and the examples it asks: the recipe's own."""

from __future__ import annotations

import json
import shlex
from types import SimpleNamespace

import pytest

from conveyor.recipe import load_recipe
from conveyor.splits import read_split
from flows.demo import CLASSIFIER_STEPS, demo_steps, example_texts
from testbed.paths import RECIPES_DIR

pytestmark = pytest.mark.unit


def test_a_classifier_that_asks_for_fewer_steps_than_the_cap_keeps_its_own() -> None:
    # SIB-200 zh on e5: 4 epochs of 701 texts at batch 16 = 176 steps; the cap (400) once
    # made the demo train 9 epochs for an hour and more on 2 cores.
    assert demo_steps(load_recipe(RECIPES_DIR / "sib200-zh-e5.yaml")) == 4 * 44


def test_a_long_classifier_recipe_is_capped_for_the_demo() -> None:
    recipe = load_recipe(RECIPES_DIR / "clinc150-minilm.yaml")  # 5 epochs of 15,000 texts
    assert recipe.training.planned_steps(15_000) > CLASSIFIER_STEPS
    assert demo_steps(recipe) == CLASSIFIER_STEPS


def test_a_language_model_trains_its_recipe_budget() -> None:
    recipe = load_recipe(RECIPES_DIR / "crosswoz-smollm2.yaml")
    assert demo_steps(recipe) == recipe.training.max_steps


def test_planned_steps_count_epochs_processes_and_accumulation() -> None:
    training = load_recipe(RECIPES_DIR / "sib200-zh-e5.yaml").training
    assert training.planned_steps(701) == 176
    assert training.planned_steps(701, world=2) == 88
    stepped = training.model_copy(update={"max_steps": 7})
    assert stepped.planned_steps(701) == 7
    accumulated = training.model_copy(update={"gradient_accumulation_steps": 4})
    assert accumulated.planned_steps(701) == 44


@pytest.mark.parametrize("recipe_file", ["sib200-zh-e5.yaml", "clinc150-minilm.yaml"])
def test_the_demo_asks_test_texts_of_different_labels_in_the_recipes_language(
    recipe_file: str,
) -> None:
    recipe = load_recipe(RECIPES_DIR / recipe_file)
    texts = example_texts(recipe)
    test = read_split(recipe.data.test)
    labels = dict(zip(test[recipe.data.text_field], test[recipe.data.label_field], strict=True))
    assert len(texts) == 5 and all(text in labels for text in texts)
    assert len({labels[text] for text in texts}) == 5
    assert example_texts(recipe) == texts  # the same draw every run
    if recipe_file.startswith("sib200-zh"):  # a Chinese classifier is asked Chinese
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts)


def test_the_printed_curl_sends_the_first_example_as_json_whatever_its_quotes() -> None:
    from cli.demo_cmd import _curl

    text = "明天北京的天气怎么样？ it's 'quoted'"
    line = _curl(SimpleNamespace(endpoint="http://127.0.0.1:3000", examples=[{"text": text}]))
    words = shlex.split(line)
    assert words[words.index("-d") + 1] == json.dumps({"texts": [text]}, ensure_ascii=False)
    assert "明天北京" in line  # Chinese printed as itself, not \\u escapes
