"""``validate``: the data checks of a text recipe (``data.format: text``), as a Report.

Reads the splits, runs the GE suite of the task and the pandas checks (duplicates, train
leakage, truncation, class sizes and imbalance), and profiles train for drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from conveyor.recipe.schema import ChecksSection, Task, with_extra
from conveyor.splits import DataError, fingerprint_splits, read_split
from data_checks import checks as data_gates
from data_checks.drift_report import attach_drift
from data_checks.expectations import ge_version, run_suite
from data_checks.reference import Reference
from data_checks.report import Check, Outcome, Report, Status
from data_checks.stats import (
    class_counts,
    data_profile,
    duplicates,
    imbalance_ratio,
    leakage,
    length_summary,
    normalize_texts,
)
from data_checks.text.suites import suite_for
from data_checks.text.tokens import MAX_TOKENIZED_ROWS, TokenCounter

__all__ = ["validate"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _read_all(
    splits: Mapping[str, Path], progress: Progress, extra: Sequence[Path] = ()
) -> dict[str, pd.DataFrame]:
    """Every split; the ``extra`` files' rows are train's (checked as train)."""
    frames: dict[str, pd.DataFrame] = {}
    for name, path in with_extra(splits, extra).items():
        size = Path(path).stat().st_size if Path(path).is_file() else 0
        progress(f"reading {name}: {path} ({size / 1e6:,.1f} MB)")
        frames[name] = read_split(path)
        progress(f"read {name}: {len(frames[name]):,} rows")
    names = [name for name in frames if name not in splits]
    added = [frames.pop(n).drop(columns=["provenance"], errors="ignore") for n in names]
    if added and "train" in frames:
        frames["train"] = pd.concat([frames["train"], *added], ignore_index=True)
    return frames


def _describe_split(
    frame: pd.DataFrame, text_field: str, label_field: str | None
) -> dict[str, Any]:
    info: dict[str, Any] = {"rows": len(frame), "columns": [str(c) for c in frame.columns]}
    if text_field in frame.columns:
        info["length"] = length_summary(frame[text_field].astype("str").str.len())
    if label_field and label_field in frame.columns:
        counts = class_counts(frame[label_field])
        info |= {"classes": len(counts), "imbalance_ratio": imbalance_ratio(counts)}
        info["label_counts"] = counts
    return info


def _token_sample(texts: pd.Series) -> pd.Series:
    if len(texts) <= MAX_TOKENIZED_ROWS:
        return texts
    return texts.sample(n=MAX_TOKENIZED_ROWS, random_state=0)


def _suite_checks(
    frames: Mapping[str, pd.DataFrame],
    task: Task,
    text_field: str,
    label: str | None,
    checks: ChecksSection,
    progress: Progress,
) -> list[Check]:
    """The task's GE suite on each split; outside train, labels must be train's."""
    train_labels = None
    if label and label in frames["train"].columns:
        train_labels = sorted(frames["train"][label].dropna().unique().tolist(), key=str)
    found: list[Check] = []
    for name, frame in frames.items():
        progress(f"great expectations: {name} ({len(frame):,} rows)")
        wanted = [c for c in (text_field, label) if c and c in frame.columns]
        suite = suite_for(
            task,
            columns=frame.columns,
            text_field=text_field,
            label_field=label,
            checks=checks,
            train_labels=None if name == "train" else (train_labels or []),
        )
        found += run_suite(name, frame[wanted], suite)
    return found


def _text_checks(
    frames: Mapping[str, pd.DataFrame],
    text_field: str,
    checks: ChecksSection,
    max_length: int,
    counter: TokenCounter,
    progress: Progress,
) -> list[Check]:
    found: list[Check] = []
    progress("duplicates and train leakage: normalizing texts")
    normalized = {name: normalize_texts(f[text_field]) for name, f in frames.items()}
    for name, norm in normalized.items():
        found.append(
            data_gates.check_duplicates(name, duplicates(norm), checks.max_duplicate_share)
        )
        if name != "train" and "train" in normalized:
            overlap = leakage(normalized["train"], norm)
            found.append(data_gates.check_leakage(name, overlap, checks.max_leakage_share))
    for name, frame in frames.items():
        texts = _token_sample(frame[text_field].dropna())
        progress(f"counting tokens of {name}: {len(texts):,} texts")
        tally = counter.count(texts, progress)
        found.append(
            data_gates.check_truncation(
                name, tally.lengths, max_length, checks.max_truncated_share, counter.method
            )
        )
        if tally.unknown is not None:
            total = int(tally.lengths.sum())
            limit = checks.max_unknown_token_share
            found.append(data_gates.check_unknown_tokens(name, tally.unknown, total, limit))
    return found


def _skipped(name: str, why: str) -> Check:
    return Check(name, "all", Outcome.SKIPPED, why)


def validate(
    splits: Mapping[str, Path],
    *,
    deployment: str,
    task: Task,
    text_field: str,
    label_field: str | None,
    checks: ChecksSection,
    max_length: int,
    counter: TokenCounter,
    reference: Reference | None = None,
    progress: Progress | None = None,
    extra: Sequence[Path] = (),
) -> Report:
    """Validate the splits (``extra`` files as part of train); never raises for bad data:
    unusable input gives status UNUSABLE."""
    say = progress or _quiet
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = Report(deployment=deployment, task=str(task), created_at=created)
    started = time.perf_counter()
    try:
        frames = _read_all(splits, say, extra)
    except DataError as exc:
        report.status, report.error = Status.UNUSABLE, str(exc)
        return report
    report.data_fingerprint = fingerprint_splits(with_extra(splits, extra))
    report.timings["read_s"] = round(time.perf_counter() - started, 3)
    report.splits = {
        name: _describe_split(f, text_field, label_field) for name, f in frames.items()
    }
    label = label_field if task is Task.CLASSIFICATION else None

    started = time.perf_counter()
    for check in _suite_checks(frames, task, text_field, label, checks, say):
        report.add(check)
    report.timings["great_expectations_s"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    if all(text_field in f.columns for f in frames.values()):
        for check in _text_checks(frames, text_field, checks, max_length, counter, say):
            report.add(check)
        report.token_lengths = {"method": counter.method, "max_length": max_length}
    else:
        report.add(_skipped("text_checks", f"column {text_field!r} missing: see above"))
    if label and label in frames["train"].columns:
        counts = class_counts(frames["train"][label])
        if counts:
            report.add(data_gates.check_class_sizes(counts, checks.min_examples_per_class))
            report.add(data_gates.check_imbalance(counts, checks.max_imbalance_ratio))
    if text_field in frames["train"].columns:
        has_label = label is not None and label in frames["train"].columns
        report.profile = data_profile(frames["train"], text_field, label if has_label else None)
    report.timings["pandas_checks_s"] = round(time.perf_counter() - started, 3)

    attach_drift(report, reference, checks)
    report.timings["total_s"] = round(sum(report.timings.values()), 3)
    report.great_expectations = ge_version()
    return report
