"""Text for people: tables and one-record views, shared by the commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor.registry import AliasMove, AuditRecord, VersionRecord

__all__ = ["format_table", "render_audit", "render_history", "render_version", "when"]


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _metrics_line(metrics: dict[str, Any]) -> str:
    shown = []
    for key, value in sorted(metrics.items()):
        if isinstance(value, float):
            shown.append(f"{key}={value:.4g}")
        elif isinstance(value, int | str):
            shown.append(f"{key}={value}")
    return ", ".join(shown) or "-"


def render_version(record: VersionRecord, aliases: dict[str, str | None]) -> str:
    held = sorted(name for name, version in aliases.items() if version == record.version)
    lines = [
        f"version:          {record.version}",
        f"deployment:       {record.deployment}",
        f"status:           {record.status}",
        f"aliases:          {', '.join(held) or '-'}",
        f"task:             {record.task}",
        f"base model:       {record.base_model}",
        f"artifact:         {record.artifact_uri or '-'}",
        f"data fingerprint: {record.data_fingerprint or '-'}",
        f"created:          {when(record.created_at)} by {record.created_by}",
        f"metrics:          {_metrics_line(record.metrics)}",
    ]
    if record.verdict is not None:
        report = record.verdict.get("report")
        if isinstance(report, str) and report.strip():
            lines += ["", "gate verdict:", report.rstrip()]
        else:
            lines += ["", "gate verdict:", json.dumps(record.verdict, indent=2, sort_keys=True)]
    return "\n".join(lines)


def render_history(moves: Sequence[AliasMove]) -> str:
    rows = [
        (when(m.at), m.alias, m.from_version or "-", m.to_version or "-", m.actor, m.reason)
        for m in moves
    ]
    return format_table(("when", "alias", "from", "to", "by", "why"), rows)


def render_audit(entries: Sequence[AuditRecord]) -> str:
    rows = [(when(e.at), e.action, e.version or "-", e.actor, e.reason) for e in entries]
    return format_table(("when", "action", "version", "by", "why"), rows)
