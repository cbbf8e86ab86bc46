"""A causal LM is judged on perplexity, with fixed generation samples in its report."""

from __future__ import annotations

import pytest

from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from gates import evaluate_version
from testbed.paths import RECIPES_DIR
from training import fine_tune

pytestmark = pytest.mark.integration

TINY = [
    "training.max_steps=6",
    "training.batch_size=4",
    "model.max_length=64",
    "model.config={n_layer: 1, n_head: 2, n_embd: 32, vocab_size: 512}",
]


def test_tiny_gpt2_gets_perplexity_samples_and_a_regression_check(
    settings: Settings, registry: Registry
) -> None:
    recipe = load_recipe(RECIPES_DIR / "tiny-shakespeare-gpt2.yaml", TINY)
    first = fine_tune(recipe, settings, show_progress=False, registry=registry).version
    assert first is not None
    outcome = evaluate_version(registry, settings, first, overrides=["gates.max_perplexity=1e6"])
    assert outcome.verdict.passed, outcome.report
    assert outcome.verdict.headline_metric == "perplexity"
    perplexity = outcome.candidate.metrics["perplexity"]
    assert 1 < perplexity < 1e6
    interval = outcome.candidate.interval
    assert interval is not None and interval.low <= perplexity <= interval.high
    assert outcome.report.count("\n- `") == 3  # three greedy samples
    registry.move_alias(recipe.name, "production", first, reason="test")

    longer = load_recipe(
        RECIPES_DIR / "tiny-shakespeare-gpt2.yaml", [*TINY[1:], "training.max_steps=1"]
    )
    second = fine_tune(longer, settings, show_progress=False, registry=registry).version
    assert second is not None
    judged = evaluate_version(registry, settings, second, overrides=["gates.max_perplexity=1e6"])
    names = [check.name for check in judged.verdict.checks]
    assert names == ["max_perplexity", "max_perplexity_increase"]
    rise = judged.verdict.checks[1]
    expected = judged.candidate.metrics["perplexity"] / outcome.candidate.metrics["perplexity"] - 1
    assert rise.value == pytest.approx(expected, rel=1e-6)
