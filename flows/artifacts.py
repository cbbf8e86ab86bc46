"""Publish decisions as Prefect artifacts: tables and Markdown a person reads in the UI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

__all__ = ["publish_gate_verdict", "publish_promotion", "publish_validation"]


def _key(deployment: str, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return f"{deployment}-{what}".lower().replace("_", "-")


def publish_validation(deployment: str, markdown: str, checks: list[dict[str, Any]]) -> None:
    create_markdown_artifact(
        markdown, key=_key(deployment, "data-validation"), description="Data checks report"
    )
    if checks:
        create_table_artifact(
            checks,
            key=_key(deployment, "data-checks"),
            description="Every data check and its outcome",
        )


def _inline_png(path: str | None) -> str:
    if not path or not Path(path).is_file():
        return ""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"\n\n![per-class F1](data:image/png;base64,{encoded})\n"


def publish_gate_verdict(deployment: str, verdict: dict[str, Any]) -> None:
    report = str(verdict.get("report", ""))
    plot_path = verdict.get("plot_path")
    if plot_path:  # the report links the PNG by file name; inline it for the UI
        report = report.replace(f"![per-class F1]({Path(plot_path).name})", "")
    create_markdown_artifact(
        report + _inline_png(plot_path),
        key=_key(deployment, "gate-verdict"),
        description=f"Gate verdict for {verdict.get('candidate')}",
    )
    rows = [
        {
            "check": c["name"],
            "value": c["value"],
            "threshold": f"{c['comparison']} {c['threshold']}" if c["comparison"] else "",
            "outcome": c["outcome"],
            "detail": c["detail"],
        }
        for c in verdict.get("checks", [])
    ]
    create_table_artifact(rows, key=_key(deployment, "gate-checks"), description="Gate checks")


def publish_promotion(deployment: str, lines: list[str]) -> None:
    create_markdown_artifact(
        "\n".join(lines) + "\n", key=_key(deployment, "promotion"), description="Promotion outcome"
    )
