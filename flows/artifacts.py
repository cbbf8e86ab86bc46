"""Publish decisions as Prefect artifacts: tables and Markdown a person reads in the UI.

Tables keep to a few narrow columns (the long wording lives in the Markdown report next to
them); figures are rounded; the per-class plot is inlined so the UI shows it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from conveyor.markdown import figure
from gates.text.report import PLOT_ALT

__all__ = [
    "comparison_rows",
    "gate_check_rows",
    "inline_plot",
    "publish_gate_verdict",
    "publish_comparison",
    "publish_promotion",
    "publish_validation",
    "validation_rows",
]

_FIRST = {"failed": 0, "warning": 1, "passed": 2, "skipped": 3}
# Table cells are plain text in the current UI but Markdown in the older one, where a cell
# starting ">=" became a quote block: comparisons are written with signs neither reads.
_SIGNS = {">=": "≥", "<=": "≤", ">": "more than", "<": "less than"}


def _key(deployment: str, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return f"{deployment}-{what}".lower().replace("_", "-")


def validation_rows(checks: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One short row per check, problems first: check, split, outcome (no free text)."""
    rows = [
        {"check": str(c["check"]), "split": str(c["split"]), "outcome": str(c["outcome"])}
        for c in checks
    ]
    return sorted(rows, key=lambda r: (_FIRST.get(r["outcome"], 9), r["check"], r["split"]))


def publish_validation(deployment: str, markdown: str, checks: list[dict[str, Any]]) -> None:
    create_markdown_artifact(
        markdown, key=_key(deployment, "data-validation"), description="Data checks report"
    )
    if checks:
        create_table_artifact(
            validation_rows(checks),
            key=_key(deployment, "data-checks"),
            description="Every data check and its outcome (the report says what each found)",
        )


def inline_plot(report: str, plot_path: str | None) -> str:
    """The report with its plot link replaced by the PNG itself (the UI has no file access)."""
    if not plot_path or not Path(plot_path).is_file():
        return report
    encoded = base64.b64encode(Path(plot_path).read_bytes()).decode()
    link = re.compile(r"!\[[^\]]*\]\(" + re.escape(Path(plot_path).name) + r"\)")
    image = f"![{PLOT_ALT}](data:image/png;base64,{encoded})"
    if link.search(report):
        return link.sub(lambda _: image, report)
    return f"{report.rstrip()}\n\n{image}\n"


def gate_check_rows(verdict: dict[str, Any]) -> list[dict[str, str]]:
    """check, value, threshold, result: rounded, four narrow columns."""
    rows = []
    for c in verdict.get("checks", []):
        comparison = str(c.get("comparison") or "")
        sign = _SIGNS.get(comparison, comparison)
        threshold = f"{sign} {figure(c['threshold'])}" if comparison else "-"
        value = c.get("value")
        rows.append(
            {
                "check": str(c["name"]),
                "value": figure(value) if isinstance(value, int | float) else "-",
                "threshold": threshold,
                "result": str(c["outcome"]),
            }
        )
    return rows


def publish_gate_verdict(deployment: str, verdict: dict[str, Any]) -> None:
    report = inline_plot(str(verdict.get("report", "")), verdict.get("plot_path"))
    create_markdown_artifact(
        report,
        key=_key(deployment, "gate-verdict"),
        description=f"Gate verdict for {verdict.get('candidate')}",
    )
    create_table_artifact(
        gate_check_rows(verdict), key=_key(deployment, "gate-checks"), description="Gate checks"
    )


def publish_promotion(deployment: str, lines: list[str]) -> None:
    create_markdown_artifact(
        "\n".join(lines) + "\n", key=_key(deployment, "promotion"), description="Promotion outcome"
    )


def publish_conversion(
    deployment: str,
    lines: list[str],
    parity_report: str,
    *,
    stage: str = "conversion",
    what: str = "GGUF conversion",
) -> None:
    """A conversion's or compression's outcome and its parity gate's report (against the
    parent version); ``stage`` keys the artifact, ``what`` describes it."""
    create_markdown_artifact(
        "\n".join(lines) + "\n\n" + parity_report,
        key=_key(deployment, stage),
        description=f"{what} and its parity gate",
    )


def _cell(text: Any, width: int) -> str:
    said = " ".join(str(text).split())
    return said if len(said) <= width else said[: width - 1] + "…"


def comparison_rows(
    version_a: str, version_b: str, rows: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Side by side: the input, each version's answer (columns named by version), whether
    they agree and how often the input was asked; differing rows first, as given."""
    return [
        {
            "input": _cell(r["request"], 80),
            version_a: _cell(r["answer_a"], 60),
            version_b: _cell(r["answer_b"], 60),
            "agree": "same" if r["same"] else "differs",
            "asked": str(r["seen"]),
        }
        for r in rows
    ]


def publish_comparison(
    deployment: str, summary: str, version_a: str, version_b: str, rows: list[dict[str, Any]]
) -> str:
    """Two versions' answers as a table artifact and a one-line summary; the table's key."""
    key = _key(deployment, "traffic-compare")
    create_markdown_artifact(
        f"## {version_a} vs {version_b}\n\n{summary}\n",
        key=f"{key}-summary",
        description="Where two versions answer differently",
    )
    create_table_artifact(
        comparison_rows(version_a, version_b, rows),
        key=key,
        description=f"{version_a} vs {version_b}: answers side by side, differing first",
    )
    return key
