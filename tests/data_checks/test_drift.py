"""Drift against the version in production: PSI of labels and lengths, gated by the recipe."""

from __future__ import annotations

import pandas as pd
import pytest

from conveyor.registry import Registry
from data_checks import (
    PROFILE_KEY,
    Outcome,
    data_profile,
    find_reference,
    validate_recipe,
)
from data_checks.drift import compare_profiles, psi
from tests.data_checks.conftest import Frames, MakeRecipe

pytestmark = pytest.mark.unit


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    mild, strong = psi([50, 50], [55, 45]), psi([50, 50], [90, 10])
    assert 0 < mild < 0.1 < 0.2 < strong


def test_profile_compares_labels_and_lengths(clinc_frames: Frames) -> None:
    train = clinc_frames["train"]
    reference = data_profile(train, "text", "label")
    same = compare_profiles(
        reference, data_profile(train.sample(frac=0.5, random_state=0), "text", "label")
    )
    assert same.label_psi is not None and same.label_psi < 0.05 and same.length_psi < 0.05
    longer = train.assign(text=train["text"] + " " + train["text"])
    assert compare_profiles(reference, data_profile(longer, "text", "label")).length_psi > 0.2


def _shifted(train: pd.DataFrame) -> pd.DataFrame:
    """Keep every example of 30 intents and a tenth of the others: a skewed label mix."""
    labels = sorted(train["label"].unique())
    kept = train["label"].isin(labels[:30])
    return pd.concat([train[kept], train[~kept].groupby("label").head(10)])


def _production(registry: Registry, frames: Frames, store_profile: bool) -> str:
    metrics = {PROFILE_KEY: data_profile(frames["train"], "text", "label")} if store_profile else {}
    record = registry.register_version(
        "clinc150-minilm",
        task="classification",
        base_model="minilm",
        recipe={
            "data": {"train": str(_clinc_train()), "text_field": "text", "label_field": "label"}
        },
        metrics=metrics,
    )
    registry.move_alias("clinc150-minilm", "production", record.version, reason="test")
    return record.version


def _clinc_train() -> object:
    from tests.data_checks.conftest import CLINC

    return CLINC / "train.jsonl"


@pytest.mark.parametrize("store_profile", [True, False], ids=["stored-profile", "from-recipe-path"])
def test_shifted_labels_fail_when_the_recipe_says_fail(
    registry: Registry, make_recipe: MakeRecipe, clinc_frames: Frames, store_profile: bool
) -> None:
    version = _production(registry, clinc_frames, store_profile)
    reference = find_reference(registry, "clinc150-minilm")
    assert reference is not None and reference.version == version
    recipe = make_recipe(
        train=_shifted(clinc_frames["train"]), overrides=("checks.drift.action=fail",)
    )
    report = validate_recipe(recipe, reference=reference)
    assert report.exit_code == 1
    check = next(c for c in report.failures if c.name == "drift_label_psi")
    assert check.details["psi"] > 0.2 and version in check.summary
    assert report.drift["compared"] is True and report.drift["reference"] == version


def test_drift_only_warns_by_default(
    registry: Registry, make_recipe: MakeRecipe, clinc_frames: Frames
) -> None:
    _production(registry, clinc_frames, store_profile=True)
    reference = find_reference(registry, "clinc150-minilm")
    report = validate_recipe(
        make_recipe(train=_shifted(clinc_frames["train"])), reference=reference
    )
    assert report.exit_code == 0
    assert [c.name for c in report.warnings] == ["drift_label_psi"]


def test_unchanged_data_shows_no_drift(
    registry: Registry, make_recipe: MakeRecipe, clinc_frames: Frames
) -> None:
    _production(registry, clinc_frames, store_profile=True)
    reference = find_reference(registry, "clinc150-minilm")
    report = validate_recipe(
        make_recipe(overrides=("checks.drift.action=fail",)), reference=reference
    )
    assert report.exit_code == 0
    drift = [c for c in report.checks if c.name.startswith("drift_")]
    assert len(drift) == 2 and all(c.outcome is Outcome.PASSED for c in drift)


def test_no_production_version_means_no_comparison(registry: Registry) -> None:
    assert find_reference(registry, "clinc150-minilm") is None
