"""Drift of a split's profile against the production version's: compared, and checked."""

from __future__ import annotations

from conveyor.recipe.schema import ChecksSection
from data_checks import checks as data_gates
from data_checks.drift import compare_profiles
from data_checks.reference import Reference
from data_checks.report import Report

__all__ = ["attach_drift"]


def attach_drift(report: Report, reference: Reference | None, checks: ChecksSection) -> None:
    if reference is None:
        report.drift = {"compared": False, "why": "no version serves this deployment yet"}
        return
    if report.profile is None:
        report.drift = {"compared": False, "why": "train has no text column"}
        return
    try:
        result = compare_profiles(reference.profile, report.profile)
    except ValueError as exc:
        report.drift = {"compared": False, "why": f"reference profile unusable: {exc}"}
        return
    report.drift = {
        "compared": True,
        "reference": reference.version,
        "reference_source": reference.source,
        "label_psi": result.label_psi,
        "length_psi": result.length_psi,
        "new_labels": result.new_labels,
        "missing_labels": result.missing_labels,
        "largest_label_shifts": result.largest_shifts,
    }
    for check in data_gates.check_drift(result, checks.drift, reference.version):
        report.add(check)
