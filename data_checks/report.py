"""The validation report: what was checked, what failed and why; written as JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from conveyor.errors import ExitCode

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


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report: Report) -> str:
    lines = [
        f"# Data validation: {report.deployment}",
        "",
        f"**{report.summary()}**  ",
        f"task: {report.task} · at: {report.created_at} · "
        f"fingerprint: `{report.data_fingerprint or '-'}`",
        "",
    ]
    if report.error:
        lines += ["## Error", "", f"`{report.error}`", ""]
    if report.splits:
        lines += [
            "## Splits",
            "",
            "| split | rows | classes | imbalance | length median / p99 / max |",
        ]
        lines += ["|---|---:|---:|---:|---|"]
        for name, info in report.splits.items():
            length = info.get("length", {})
            shown = (
                f"{length.get('median', '-')} / {length.get('p99', '-')} / {length.get('max', '-')}"
            )
            ratio = info.get("imbalance_ratio")
            lines.append(
                f"| {name} | {info.get('rows', '-'):,} | {info.get('classes', '-')} | "
                f"{'-' if ratio is None else f'{ratio:.2f}'} | {shown} |"
            )
        lines.append("")
    order = {Outcome.FAILED: 0, Outcome.WARNING: 1, Outcome.PASSED: 2, Outcome.SKIPPED: 3}
    if report.checks:
        lines += [
            "## Checks",
            "",
            "| outcome | split | check | by | summary |",
            "|---|---|---|---|---|",
        ]
        for check in sorted(report.checks, key=lambda c: order[c.outcome]):
            lines.append(
                f"| {check.outcome} | {check.split} | {check.name} | {check.source} | "
                f"{_cell(check.summary)} |"
            )
        lines.append("")
    if report.token_lengths:
        lines += ["## Token lengths", "", f"method: {report.token_lengths.get('method')}", ""]
    if report.drift:
        lines += ["## Drift", "", "```json", json.dumps(report.drift, indent=2), "```", ""]
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
