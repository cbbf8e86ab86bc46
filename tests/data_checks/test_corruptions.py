"""Real CLINC150 data corrupted one way per test: the check that must catch it fails, exit 1."""

from __future__ import annotations

import pandas as pd
import pytest

from data_checks import Outcome, Report, Status, validate_recipe
from tests.data_checks.conftest import Frames, MakeRecipe

pytestmark = pytest.mark.unit


def failed(report: Report) -> dict[tuple[str, str], str]:
    return {(check.split, check.name): check.summary for check in report.failures}


def test_clean_data_passes(make_recipe: MakeRecipe) -> None:
    report = validate_recipe(make_recipe())
    assert report.status is Status.PASSED, [c.line() for c in report.failures]
    assert report.exit_code == 0
    sources = {check.source for check in report.checks}
    assert sources == {"great_expectations", "pandas"}
    assert report.data_fingerprint and report.data_fingerprint.startswith("sha256:")
    assert report.profile is not None and report.profile["rows"] == 15_100


def test_nulls_in_text_and_label(make_recipe: MakeRecipe, clinc_frames: Frames) -> None:
    train = clinc_frames["train"].copy()
    train.loc[train.index[:7], "text"] = None
    train.loc[train.index[7:9], "text"] = [" \t ", "\u3000\xa0"]  # blank: ASCII and unicode
    test = clinc_frames["test"].copy()
    test.loc[test.index[:3], "label"] = None
    report = validate_recipe(make_recipe(train=train, test=test))
    assert report.exit_code == 1
    found = failed(report)
    assert (
        "text is null: 7 of 15,100 rows"
        in found[("train", "expect_column_values_to_not_be_null(text)")]
    )
    assert (
        "label is null: 3 of 5,500" in found[("test", "expect_column_values_to_not_be_null(label)")]
    )


def test_unknown_label(make_recipe: MakeRecipe, clinc_frames: Frames) -> None:
    validation = clinc_frames["validation"].copy()
    validation.loc[validation.index[:4], "label"] = "order_a_unicorn"
    report = validate_recipe(make_recipe(validation=validation))
    assert report.exit_code == 1
    summary = failed(report)[("validation", "expect_column_values_to_be_in_set(label)")]
    assert "4 of 3,100 rows" in summary and "order_a_unicorn" in summary


def test_test_label_missing_from_train(make_recipe: MakeRecipe, clinc_frames: Frames) -> None:
    train = clinc_frames["train"]
    report = validate_recipe(make_recipe(train=train[train["label"] != "translate"]))
    assert report.exit_code == 1
    summary = failed(report)[("test", "expect_column_values_to_be_in_set(label)")]
    assert "translate" in summary and "never seen in train" in summary


def test_five_percent_train_test_leakage(make_recipe: MakeRecipe, clinc_frames: Frames) -> None:
    test = clinc_frames["test"].copy()
    leaked = clinc_frames["train"].sample(n=len(test) // 20, random_state=1)
    test.iloc[: len(leaked)] = leaked.to_numpy()
    report = validate_recipe(make_recipe(test=test))
    assert report.exit_code == 1
    check = next(c for c in report.failures if c.name == "train_leakage")
    assert check.split == "test" and check.details["share"] >= 0.05
    assert check.details["examples"], "the report shows leaked texts"


def test_duplicates_and_too_small_class(make_recipe: MakeRecipe, clinc_frames: Frames) -> None:
    train = clinc_frames["train"]
    tiny = train[train["label"] == "translate"].head(3)
    rest = train[train["label"] != "translate"]
    train = pd.concat([rest, tiny, rest.head(2_000)])
    report = validate_recipe(make_recipe(train=train))
    found = failed(report)
    assert "translate" in found[("train", "min_examples_per_class")]
    assert "repeat a text of the split" in found[("train", "duplicates")]
    assert ("train", "class_imbalance") in found  # 100+ vs 3 over the 20x limit


def test_thresholds_come_from_the_recipe(make_recipe: MakeRecipe) -> None:
    recipe = make_recipe(overrides=("checks.max_text_chars=50", "model.max_length=8"))
    report = validate_recipe(recipe)
    found = failed(report)
    assert "1..50 characters" in found[("train", "expect_column_value_lengths_to_be_between(text)")]
    assert "model.max_length=8" in found[("test", "token_truncation")]
    assert "tokenizer:" in report.token_lengths["method"]


def test_missing_text_column_is_a_failed_expectation(
    make_recipe: MakeRecipe, clinc_frames: Frames
) -> None:
    train = clinc_frames["train"].rename(columns={"text": "utterance"})
    report = validate_recipe(make_recipe(train=train))
    assert report.exit_code == 1
    assert ("train", "expect_column_to_exist(text)") in failed(report)
    assert any(c.outcome is Outcome.SKIPPED for c in report.checks)
