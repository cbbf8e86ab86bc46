"""Data checks speed: the GE suite on 1M rows of text+label against the same checks in pandas.

Two comparisons, each interleaved in one process (``testbed.harness.compare``):

* core: the four core expectations (text not null, label not null, label in the train label
  set, text length within bounds) run by Great Expectations vs the same four in raw pandas;
* GE suite only: all 8 expectations of an eval split vs the same 8 checks in pandas;
* full: everything ``data_checks`` does per split after reading (the whole GE suite, then the
  pandas gates: normalized-text duplicates, class counts and imbalance, length histogram) vs
  the same checks written directly in pandas.

GE's fixed start-up (import + ephemeral context) is measured once and reported apart.
Token counting is left out of both arms: it is the tokenizer's cost, the same either way.

    .venv/bin/python -m bench.validate_speed --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from testbed.harness import compare, print_comparison

ROOT = Path(__file__).resolve().parent.parent
CLINC_TRAIN = ROOT / "data" / "clinc150" / "train.jsonl"
MIN_CHARS, MAX_CHARS = 1, 20_000

Check = Callable[[pd.DataFrame, list[str]], float]


def make_frame(rows: int) -> pd.DataFrame:
    """``rows`` real CLINC150 utterances and intents, sampled with replacement (seeded)."""
    from conveyor.splits import read_split

    base = read_split(CLINC_TRAIN)
    picks = np.random.default_rng(0).integers(0, len(base), rows)
    return base.iloc[picks].reset_index(drop=True)


def ge_startup() -> float:
    started = time.perf_counter()
    from data_checks.expectations import shared_context

    shared_context()
    return time.perf_counter() - started


def core_ge(frame: pd.DataFrame, labels: list[str]) -> float:
    from great_expectations.expectations.core.expect_column_value_lengths_to_be_between import (
        ExpectColumnValueLengthsToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )

    from data_checks.expectations import run_suite

    suite = [
        ExpectColumnValuesToNotBeNull(column="text"),
        ExpectColumnValuesToNotBeNull(column="label"),
        ExpectColumnValuesToBeInSet(column="label", value_set=labels),
        ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=MIN_CHARS, max_value=MAX_CHARS
        ),
    ]
    checks = run_suite("bench", frame, suite)
    assert all(check.outcome == "passed" for check in checks), [c.line() for c in checks]
    return len(frame)


def core_pandas(frame: pd.DataFrame, labels: list[str]) -> float:
    text, label = frame["text"], frame["label"]
    lengths = text.str.len()
    results = [
        int(text.isna().sum()),
        int(label.isna().sum()),
        int((~label.isin(labels) & label.notna()).sum()),
        int((~lengths.between(MIN_CHARS, MAX_CHARS) & text.notna()).sum()),
    ]
    assert results == [0, 0, 0, 0]
    return len(frame)


def _pandas_gates(frame: pd.DataFrame) -> None:
    """The gates data_checks computes in pandas: the same code in both arms."""
    from data_checks.stats import (
        class_counts,
        duplicates,
        imbalance_ratio,
        length_histogram,
        length_summary,
        normalize_texts,
    )

    duplicates(normalize_texts(frame["text"]))
    imbalance_ratio(class_counts(frame["label"]))
    lengths = frame["text"].str.len()
    length_summary(lengths)
    length_histogram(lengths)


def suite_ge(frame: pd.DataFrame, labels: list[str]) -> float:
    """The whole GE suite ``data_checks`` runs on an eval split (8 expectations)."""
    from conveyor.recipe.schema import ChecksSection, Task
    from data_checks.expectations import run_suite
    from data_checks.text.suites import suite_for

    suite = suite_for(
        Task.CLASSIFICATION,
        columns=frame.columns,
        text_field="text",
        label_field="label",
        checks=ChecksSection(min_text_chars=MIN_CHARS, max_text_chars=MAX_CHARS),
        train_labels=labels,
    )
    checks = run_suite("bench", frame, suite)
    assert all(check.outcome == "passed" for check in checks), [c.line() for c in checks]
    return len(frame)


def suite_pandas(frame: pd.DataFrame, labels: list[str]) -> float:
    """The same 8 checks, written as fast as plain pandas allows."""
    text, label = frame["text"], frame["label"]
    lengths = text.str.len()
    if pd.api.types.is_string_dtype(text.dtype) and text.dtype != object:
        not_str = 0  # a string dtype holds only strings (and nulls)
    else:
        not_str = int((~text.dropna().map(lambda value: isinstance(value, str))).sum())
    results = [
        int(not {"text", "label"} <= set(frame.columns)),
        int(text.isna().sum()),
        not_str,
        int((text.str.strip().str.len() == 0).sum()),
        int((~lengths.between(MIN_CHARS, MAX_CHARS) & text.notna()).sum()),
        int(label.isna().sum()),
        int((~label.isin(labels) & label.notna()).sum()),
    ]
    assert results == [0] * len(results), results
    return len(frame)


def full_ge(frame: pd.DataFrame, labels: list[str]) -> float:
    suite_ge(frame, labels)
    _pandas_gates(frame)
    return len(frame)


def full_pandas(frame: pd.DataFrame, labels: list[str]) -> float:
    suite_pandas(frame, labels)
    _pandas_gates(frame)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    startup = ge_startup()
    frame = make_frame(args.rows)
    labels = sorted(frame["label"].unique().tolist())
    arms: list[tuple[str, Check, Check]] = [
        ("core expectations", core_ge, core_pandas),
        ("GE suite only", suite_ge, suite_pandas),
        ("full suite", full_ge, full_pandas),
    ]
    for title, arm, baseline in arms:
        result = compare(
            f"data checks, {title}, {args.rows:,} rows",
            (f"great expectations {title}", partial(arm, frame, labels)),
            (f"raw pandas {title}", partial(baseline, frame, labels)),
            repeats=args.repeats,
            warmup=1,
            unit="rows/s",
        )
        result.notes["GE start-up (import + context), once"] = f"{startup:.2f} s"
        result.notes["GE slower than pandas by"] = f"{1 / result.ratio:.2f}x"
        print_comparison(result, as_json=args.json)


if __name__ == "__main__":
    main()
