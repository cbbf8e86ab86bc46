"""Every shipped recipe's data passes its own checks (with the recipe's thresholds)."""

from __future__ import annotations

import pytest

from conveyor.recipe import load_recipe
from data_checks import validate_recipe
from data_checks.text.tokens import APPROXIMATION
from testbed.opt_in import shipped_recipe_params
from testbed.paths import RECIPES_DIR

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", shipped_recipe_params(sorted(RECIPES_DIR.glob("*.yaml"))))
def test_shipped_recipe_data_passes(path: object) -> None:
    recipe = load_recipe(path)  # type: ignore[arg-type]
    report = validate_recipe(recipe)
    assert report.exit_code == 0, [check.line() for check in report.failures]
    method = report.token_lengths["method"]
    if recipe.data.format == "chat":
        assert method.startswith("chat template of ")  # counted as the model will see it
    elif recipe.model.base == "tiny-gpt2":
        assert method == APPROXIMATION  # the report says it is an approximation
    else:
        assert method.startswith("tokenizer: ")
