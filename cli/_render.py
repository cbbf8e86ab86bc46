"""Text for people: tables and one-record views, shared by the commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor.markdown import figure as number
from conveyor.registry import AliasMove, AuditRecord, VersionRecord
from serving.control.wording import made_by

__all__ = [
    "json_text",
    "format_table",
    "number",
    "render_audit",
    "render_comparison",
    "render_history",
    "render_verdict",
    "render_version",
    "when",
]


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """JSON for a terminal: indented, and Chinese (any non-ASCII text) as itself, not escaped."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False, sort_keys=sort_keys)


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


def _indent(text: str, by: str = "  ") -> list[str]:
    return [by + line for line in text.splitlines()]


def _whole(value: Any) -> Any:
    """A count stored as a float by an older version (``400.0``) shown as the int it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return int(value)
    return value


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    rows = [
        (key, number(_whole(value)) if isinstance(value, int | float) else value)
        for key, value in sorted(metrics.items())
        if isinstance(value, int | float | str)
    ]
    if not rows:
        return ["metrics:          -"]
    return ["metrics:", *_indent(format_table(("metric", "value"), rows))]


def render_comparison(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
    """Candidate metrics, and the champion's with the change when there is one."""
    rows = []
    for key, value in sorted(candidate.items()):
        if not isinstance(value, int | float):
            continue
        row = [key, number(value)]
        if champion is not None:
            other = champion.get(key)
            if isinstance(other, int | float):
                row += [number(other), f"{value - other:+.4f}"]
            else:
                row += ["-", "-"]
        rows.append(row)
    headers = ["metric", "candidate", *(["champion", "change"] if champion is not None else [])]
    return format_table(headers, rows)


def render_verdict(verdict: dict[str, Any]) -> str:
    return "\n".join(_verdict_lines(verdict))


def _verdict_lines(verdict: dict[str, Any]) -> list[str]:
    checks = verdict.get("checks")
    if not isinstance(checks, list):
        return ["gate verdict:", *_indent(json_text(verdict, sort_keys=True))]
    title = "PASS" if verdict.get("passed") else "FAIL"
    reason = str(verdict.get("reason", ""))
    said = reason if reason.lower().startswith(title.lower()) else f"{title}: {reason}"
    lines = [
        f"gate verdict:     {said}",
        f"champion:         {verdict.get('champion') or '- (first model)'}",
    ]
    rows = []
    for check in checks:
        value, threshold = check.get("value"), check.get("threshold")
        bound = f"{check.get('comparison')} {number(threshold)}" if threshold is not None else "-"
        shown = number(value) if isinstance(value, int | float) else "-"
        rows.append((check.get("name"), shown, bound, check.get("outcome")))
    if rows:
        table = format_table(("check", "value", "threshold", "result"), rows)
        lines += ["checks:", *_indent(table)]
    for key, label in (("report_path", "report:"), ("plot_path", "plot:")):
        if verdict.get(key):
            lines.append(f"{label:<17} {verdict[key]}")
    return lines


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
        f"made by:          {made_by(record.lineage)}",
        *_metrics_table(record.metrics),
    ]
    if record.verdict is not None:
        lines += ["", *_verdict_lines(record.verdict)]
    return "\n".join(lines)


PARENT_KEYS = ("converted_from", "distilled_from")  # what a derived version's metrics name


def derived_versions(
    record: VersionRecord, versions: Sequence[VersionRecord]
) -> list[VersionRecord]:
    """The versions made from ``record`` (converted, quantized, distilled), oldest first."""
    found = [v for v in versions if record.version in (v.metrics.get(k) for k in PARENT_KEYS)]
    return sorted(found, key=lambda v: v.number)


def _method(record: VersionRecord) -> str:
    m = record.metrics
    setting = m.get("quant") or (f"{m['student_layers']} layers" if "student_layers" in m else "")
    return f"{m.get('method', '?')} {setting}".strip()


def render_derived(children: Sequence[VersionRecord]) -> list[str]:
    """Each compressed child with its method, status and verdict, speed and size beside it."""
    from gates.footprint import footprint  # the gates package is heavy: only when needed

    if not children:
        return []
    rows = []
    for child in children:
        verdict = child.verdict or {}
        theirs = verdict.get("champion_metrics") or {}
        reason = verdict.get("reason") or "not judged"
        champion = verdict.get("champion")
        against = f" (vs {champion})" if champion and champion not in reason else ""
        rows.append(
            (
                child.version,
                _method(child),
                child.status,
                reason + against,
                footprint(verdict.get("candidate_metrics") or {}, theirs) or "-",
            )
        )
    headers = ("version", "method", "status", "verdict", "speed and size (child vs judged against)")
    return ["", "compressed children:", format_table(headers, rows)]


def render_history(moves: Sequence[AliasMove]) -> str:
    rows = [
        (when(m.at), m.alias, m.from_version or "-", m.to_version or "-", m.actor, m.reason)
        for m in moves
    ]
    return format_table(("when", "alias", "from", "to", "by", "why"), rows)


def render_audit(entries: Sequence[AuditRecord]) -> str:
    rows = [(when(e.at), e.action, e.version or "-", e.actor, e.reason) for e in entries]
    return format_table(("when", "action", "version", "by", "why"), rows)
