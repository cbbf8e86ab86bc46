"""The recipe's ``serving.autoscale``: defaults, bounds and mistakes named by their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import RecipeError
from conveyor.recipe import load_recipe
from conveyor.recipe.autoscale import AutoscaleSection
from testbed.paths import RECIPES_DIR

pytestmark = pytest.mark.unit

DEMO = RECIPES_DIR / "clinc150-minilm.yaml"


def _problems(overrides: list[str]) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(DEMO, overrides)
    return caught.value.problems


def test_defaults_scale_between_one_and_four_replicas() -> None:
    autoscale = load_recipe(DEMO).serving.autoscale
    assert autoscale == AutoscaleSection()
    assert (autoscale.min_replicas, autoscale.max_replicas) == (1, 4)


def test_values_are_set_from_the_command_line() -> None:
    overrides = ["serving.autoscale.max_replicas=9", "serving.autoscale.cooldown_seconds=30"]
    autoscale = load_recipe(DEMO, overrides).serving.autoscale
    assert (autoscale.max_replicas, autoscale.cooldown_seconds) == (9, 30)


def test_max_below_min_is_refused_with_both_values() -> None:
    problems = _problems(["serving.autoscale.min_replicas=3", "serving.autoscale.max_replicas=2"])
    assert len(problems) == 1
    assert (
        "serving.autoscale" in problems[0]
        and "max_replicas: 2 is below min_replicas 3" in (problems[0])
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_replicas", "0"),  # scale to zero: a cold start in front of the first request
        ("scale_down_stabilization_seconds", "3601"),  # the HPA API's bound
        ("cooldown_seconds", "1801"),
        ("target_waiting", "0"),
        ("cpu_utilization_percent", "101"),
        ("replicas", "3"),  # not a key
    ],
)
def test_each_bad_value_names_its_key(key: str, value: str) -> None:
    (problem,) = _problems([f"serving.autoscale.{key}={value}"])
    assert problem.startswith(f"serving.autoscale.{key}"), problem


def test_the_section_round_trips_through_a_stored_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(DEMO, ["serving.autoscale.target_in_flight=3.5"])
    stored = recipe.model_dump(mode="json")["serving"]["autoscale"]
    assert AutoscaleSection.model_validate(stored).target_in_flight == 3.5
