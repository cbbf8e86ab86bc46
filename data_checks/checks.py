"""The checks computed in pandas and gated here (GE has no expectation for them).

Each function takes plain values and returns :class:`Check` records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from conveyor.recipe.schema import DriftAction, DriftSection
from data_checks.drift import DriftResult
from data_checks.report import Check, Outcome
from data_checks.stats import Overlap, imbalance_ratio

__all__ = [
    "check_class_sizes",
    "check_drift",
    "check_duplicates",
    "check_imbalance",
    "check_leakage",
    "check_truncation",
    "check_unknown_tokens",
]


def _gate(failed: bool) -> Outcome:
    return Outcome.FAILED if failed else Outcome.PASSED


def check_class_sizes(counts: Mapping[str, int], minimum: int) -> Check:
    small = {label: count for label, count in counts.items() if count < minimum}
    shown = dict(sorted(small.items(), key=lambda item: item[1])[:10])
    summary = (
        f"{len(small)} classes below checks.min_examples_per_class={minimum}: {shown}"
        if small
        else f"every class has at least {minimum} examples (smallest {min(counts.values())})"
    )
    return Check(
        "min_examples_per_class",
        "train",
        _gate(bool(small)),
        summary,
        details={"below_minimum": small, "minimum": minimum},
    )


def check_imbalance(counts: Mapping[str, int], maximum: float) -> Check:
    ratio = imbalance_ratio(dict(counts))
    largest = max(counts, key=lambda label: counts[label])
    smallest = min(counts, key=lambda label: counts[label])
    summary = (
        f"largest/smallest class = {ratio:.2f} ({largest}: {counts[largest]}, "
        f"{smallest}: {counts[smallest]}); limit checks.max_imbalance_ratio={maximum}"
    )
    return Check(
        "class_imbalance",
        "train",
        _gate(ratio > maximum),
        summary,
        details={"ratio": ratio, "largest": largest, "smallest": smallest},
    )


def _overlap_check(
    name: str, split: str, found: Overlap, limit: float, key: str, what: str
) -> Check:
    summary = (
        f"{found.rows:,} of {found.total:,} rows ({found.share:.2%}) {what}; "
        f"limit checks.{key}={limit:.2%}"
    )
    if found.examples:
        summary += f", e.g. {found.examples[:3]}"
    details = {"rows": found.rows, "share": found.share, "limit": limit, "examples": found.examples}
    return Check(name, split, _gate(found.share > limit), summary, details=details)


def check_duplicates(split: str, found: Overlap, limit: float) -> Check:
    return _overlap_check(
        "duplicates", split, found, limit, "max_duplicate_share", "repeat a text of the split"
    )


def check_leakage(split: str, found: Overlap, limit: float) -> Check:
    return _overlap_check(
        "train_leakage", split, found, limit, "max_leakage_share", "also appear in train"
    )


def check_truncation(
    split: str, tokens: np.ndarray, max_length: int, limit: float, method: str
) -> Check:
    over = int((tokens > max_length).sum())
    share = over / len(tokens) if len(tokens) else 0.0
    summary = (
        f"{over:,} of {len(tokens):,} texts ({share:.2%}) exceed model.max_length={max_length} "
        f"tokens; limit checks.max_truncated_share={limit:.2%}"
    )
    details: dict[str, Any] = {
        "truncated": over,
        "share": share,
        "counted": len(tokens),
        "median": float(np.median(tokens)) if len(tokens) else 0.0,
        "p99": float(np.percentile(tokens, 99)) if len(tokens) else 0.0,
        "max": int(tokens.max()) if len(tokens) else 0,
        "method": method,
    }
    return Check("token_truncation", split, _gate(share > limit), summary, details=details)


def check_unknown_tokens(split: str, unknown: int, total: int, limit: float) -> Check:
    """The share of the split's tokens that the base's tokenizer could only call unknown."""
    share = unknown / total if total else 0.0
    summary = (
        f"{unknown:,} of {total:,} tokens ({share:.2%}) are the tokenizer's unknown token; "
        f"limit checks.max_unknown_token_share={limit:.2%}"
    )
    if share > limit:
        summary += " (the base cannot read this text: choose a base whose vocabulary covers it)"
    details = {"unknown": unknown, "tokens": total, "share": share, "limit": limit}
    return Check("unknown_tokens", split, _gate(share > limit), summary, details=details)


def check_drift(result: DriftResult, policy: DriftSection, version: str) -> list[Check]:
    over = Outcome.FAILED if policy.action is DriftAction.FAIL else Outcome.WARNING
    if policy.action is DriftAction.PASS:
        over = Outcome.PASSED
    checks: list[Check] = []
    measured = [("length_psi", result.length_psi, policy.max_length_psi)]
    if result.label_psi is not None:
        measured.insert(0, ("label_psi", result.label_psi, policy.max_label_psi))
    for name, value, limit in measured:
        summary = (
            f"PSI {value:.3f} against {version}'s training data; "
            f"limit checks.drift.max_{name}={limit} (action: {policy.action})"
        )
        if name == "label_psi" and result.largest_shifts:
            top = result.largest_shifts[0]
            summary += (
                f"; largest move: {top['label']} "
                f"{top['reference_share']:.2%} -> {top['current_share']:.2%}"
            )
        outcome = over if value > limit else Outcome.PASSED
        checks.append(
            Check(
                f"drift_{name}",
                "train",
                outcome,
                summary,
                details={"psi": value, "limit": limit, "reference": version},
            )
        )
    return checks
