"""Drift of new data against the data of the version in production: PSI per distribution.

The population stability index compares two histograms over the same bins:
``PSI = sum((p_new - p_ref) * ln(p_new / p_ref))``. Rules of thumb: < 0.1 stable,
0.1-0.2 moderate, > 0.2 a significant shift. Empty bins are smoothed with a small epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from data_checks.stats import PROFILE_SCHEMA

__all__ = ["DriftResult", "compare_profiles", "psi"]

_EPSILON = 1e-4


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same bins."""
    if len(reference) != len(current):
        raise ValueError("psi: both histograms need the same bins")
    ref_total, cur_total = sum(reference), sum(current)
    if ref_total <= 0 or cur_total <= 0:
        return 0.0
    total = 0.0
    for ref_count, cur_count in zip(reference, current, strict=True):
        p_ref = max(ref_count / ref_total, _EPSILON)
        p_cur = max(cur_count / cur_total, _EPSILON)
        total += (p_cur - p_ref) * math.log(p_cur / p_ref)
    return total


@dataclass(frozen=True)
class DriftResult:
    """PSI of labels and lengths, the classes that appeared or vanished, the largest moves."""

    label_psi: float | None
    length_psi: float
    new_labels: list[str]
    missing_labels: list[str]
    largest_shifts: list[dict[str, Any]]


def _label_shifts(
    reference: Mapping[str, int], current: Mapping[str, int], keys: list[str]
) -> list[dict[str, Any]]:
    ref_total = sum(reference.values()) or 1
    cur_total = sum(current.values()) or 1
    shares = [
        (key, reference.get(key, 0) / ref_total, current.get(key, 0) / cur_total) for key in keys
    ]
    shares.sort(key=lambda share: -abs(share[2] - share[1]))
    return [
        {"label": key, "reference_share": round(ref, 4), "current_share": round(cur, 4)}
        for key, ref, cur in shares[:5]
    ]


def compare_profiles(reference: Mapping[str, Any], current: Mapping[str, Any]) -> DriftResult:
    """Compare two :func:`data_checks.stats.data_profile` results (reference = production's)."""
    if reference.get("schema") != PROFILE_SCHEMA:
        raise ValueError(f"reference profile has schema {reference.get('schema')!r}")
    if reference.get("length_edges") != current.get("length_edges"):
        raise ValueError("reference profile uses other length bins")
    length_psi = psi(reference["length_counts"], current["length_counts"])
    ref_labels: Mapping[str, int] | None = reference.get("labels")
    cur_labels: Mapping[str, int] | None = current.get("labels")
    if ref_labels is None or cur_labels is None:
        return DriftResult(None, length_psi, [], [], [])
    keys = sorted(set(ref_labels) | set(cur_labels))
    label_psi = psi(
        [ref_labels.get(key, 0) for key in keys], [cur_labels.get(key, 0) for key in keys]
    )
    return DriftResult(
        label_psi=label_psi,
        length_psi=length_psi,
        new_labels=sorted(set(cur_labels) - set(ref_labels)),
        missing_labels=sorted(set(ref_labels) - set(cur_labels)),
        largest_shifts=_label_shifts(ref_labels, cur_labels, keys),
    )
