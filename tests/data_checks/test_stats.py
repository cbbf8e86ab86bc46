"""The pandas statistics behind the duplicate and leakage gates."""

from __future__ import annotations

import pandas as pd
import pytest

from data_checks.stats import duplicates, leakage, normalize_texts

pytestmark = pytest.mark.unit


def test_normalization_folds_case_and_every_kind_of_whitespace() -> None:
    texts = pd.Series(["Book  a\tFlight", " book a\u3000flight\n", "book a flight", None])
    normalized = normalize_texts(texts)
    assert normalized.iloc[:3].tolist() == ["book a flight"] * 3
    assert pd.isna(normalized.iloc[3])


def test_duplicates_count_extra_copies_and_ignore_nulls() -> None:
    found = duplicates(normalize_texts(pd.Series(["Hi there", "hi  there", "bye", None, None])))
    assert (found.rows, found.total, found.examples) == (1, 5, ["hi there"])


def test_leakage_counts_rows_of_the_other_split_found_in_train() -> None:
    train = normalize_texts(pd.Series(["Where is my bag", "play music", None]))
    test = normalize_texts(pd.Series(["where is  my bag", "set an alarm", None, "PLAY MUSIC"]))
    found = leakage(train, test)
    assert (found.rows, found.share) == (2, 0.5)
