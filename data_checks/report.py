"""The validation report: what was checked, what failed and why; written as JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from conveyor.errors import ExitCode
from conveyor.markdown import code, escape, figure, table

__all__ = ["Check", "Outcome", "Report", "Status", "write_reports"]


class Outcome(StrEnum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNUSABLE = "unusable"


_EXIT_CODES = {
    Status.PASSED: ExitCode.OK,
    Status.FAILED: ExitCode.SAID_NO,
    Status.UNUSABLE: ExitCode.BAD_INPUT,
}


@dataclass(frozen=True)
class Check:
    """One check on one split (``split`` is ``"all"`` for cross-split checks)."""

    name: str
    split: str
    outcome: Outcome
    summary: str
    source: str = "pandas"
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the CLI: ``FAILED test label_in_train_labels: ...``."""
        return f"{self.outcome.upper()} {self.split} {self.name}: {self.summary}"


@dataclass
class Report:
    """Everything ``validate`` found; ``status`` decides the exit code (0 / 1 / 2)."""

    deployment: str
    task: str
    created_at: str
    status: Status = Status.PASSED
    error: str | None = None
    data_fingerprint: str | None = None
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    token_lengths: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    great_expectations: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self.status]

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.outcome is Outcome.FAILED]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.outcome is Outcome.WARNING]

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if check.outcome is Outcome.FAILED and self.status is Status.PASSED:
            self.status = Status.FAILED

    def summary(self) -> str:
        if self.status is Status.UNUSABLE:
            return f"unusable input: {self.error}"
        counted = f"{len(self.checks)} checks, {len(self.failures)} failed, "
        return f"{self.status}: {counted}{len(self.warnings)} warnings"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        data["summary"] = self.summary()
        return data


_SHORT = {
    Outcome.PASSED: "ok",
    Outcome.WARNING: "warn",
    Outcome.FAILED: "FAILED",
    Outcome.SKIPPED: "skipped",
}
_ORDER = {Outcome.FAILED: 0, Outcome.WARNING: 1, Outcome.PASSED: 2, Outcome.SKIPPED: 3}


def _length(info: dict[str, Any], key: str) -> str:
    value = info.get("length", {}).get(key)
    return "-" if value is None else figure(int(value) if float(value).is_integer() else value, 1)


def _splits_table(report: Report) -> list[str]:
    rows = []
    for name, info in report.splits.items():
        ratio = info.get("imbalance_ratio")
        rows.append(
            [
                escape(name),
                figure(info.get("rows")),
                figure(info.get("classes")),
                "-" if ratio is None else figure(float(ratio), 2),
                _length(info, "median"),
                _length(info, "p99"),
            ]
        )
    headers = ["split", "rows", "classes", "largest / smallest", "chars median", "chars p99"]
    return ["## Splits", "", table(headers, rows, right=range(1, 6)), ""]


def _checks_table(report: Report) -> list[str]:
    """Checks down, splits across: one short outcome per cell, the wording in the list below."""
    splits = list(dict.fromkeys(check.split for check in report.checks))
    cells: dict[str, dict[str, Outcome]] = {}
    for check in report.checks:
        cells.setdefault(check.name, {})[check.split] = check.outcome
    names = sorted(cells, key=lambda n: (min(_ORDER[o] for o in cells[n].values()), n))
    rows = [
        [code(name), *(_SHORT[cells[name][s]] if s in cells[name] else "" for s in splits)]
        for name in names
    ]
    return ["## Checks", "", table(["check", *map(escape, splits)], rows), ""]


def _findings(report: Report) -> list[str]:
    lines = ["## What each check found", ""]
    for check in sorted(report.checks, key=lambda c: (_ORDER[c.outcome], c.split, c.name)):
        if check.outcome is Outcome.PASSED and check.summary.startswith("ok"):
            continue  # nothing to say beyond the table
        mark = _SHORT[check.outcome]
        if check.outcome in (Outcome.FAILED, Outcome.WARNING):
            mark = f"**{mark}**"
        lines.append(
            f"- {mark} · {escape(check.split)} · {code(check.name)}: {escape(check.summary)}"
        )
    return [*lines, ""]


def _drift_lines(drift: dict[str, Any]) -> list[str]:
    lines = ["## Drift against production's data", ""]
    if not drift.get("compared"):
        return [*lines, f"Not compared: {escape(drift.get('why', '-'))}.", ""]
    lines.append(
        f"Reference {code(drift.get('reference'))} ({escape(drift.get('reference_source', '-'))}):"
        f" label PSI {figure(drift.get('label_psi'))}, length PSI {figure(drift.get('length_psi'))}"
        " (under 0.1 stable, over 0.2 a real shift)."
    )
    for key, what in (("new_labels", "New labels"), ("missing_labels", "Missing labels")):
        if drift.get(key):
            lines.append(f"{what}: {', '.join(escape(label) for label in drift[key])}.")
    shifts = drift.get("largest_label_shifts") or []
    if shifts:
        rows = [
            [
                escape(s["label"]),
                f"{s['reference_share']:.1%}",
                f"{s['current_share']:.1%}",
            ]
            for s in shifts
        ]
        lines += ["", table(["label", "production", "this data"], rows, right=(1, 2))]
    return [*lines, ""]


def _markdown(report: Report) -> str:
    lines = [
        f"# Data validation: {escape(report.deployment)}",
        "",
        f"**{escape(report.summary())}**",
        "",
        f"task {escape(report.task)} · at {escape(report.created_at)} · "
        f"fingerprint {code(report.data_fingerprint or '-')}",
        "",
    ]
    if report.error:
        lines += ["## Error", "", escape(report.error), ""]
    if report.splits:
        lines += _splits_table(report)
    if report.checks:
        lines += _checks_table(report) + _findings(report)
    if report.drift:
        lines += _drift_lines(report.drift)
    if report.token_lengths:
        lines += [
            "## Token lengths",
            "",
            f"Counted with {code(report.token_lengths.get('method'))}.",
            "",
        ]
    return "\n".join(lines)


def write_reports(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.md`` into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "validation.json"
    md_path = out_dir / "validation.md"
    json_path.write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
    md_path.write_text(_markdown(report), encoding="utf-8")
    return json_path, md_path
