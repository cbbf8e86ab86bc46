"""The fault suite's table: the rows its tests write (``FaultTable``), and docs/reliability.md's
markdown table of them (``render``; ``python -m bench.reliability_table`` rewrites the doc).

The table sits between two markers in the doc; everything else there is prose kept by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.paths import REPO_ROOT
from testbed.traffic import Answer, count

JSON = REPO_ROOT / "docs" / "reliability.json"
DOC = REPO_ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
ORDER = (
    "varied concurrent traffic",
    "Redis killed",
    "Postgres restarted",
    "registry unreachable at worker start",
    "worker kill -9",
    "slow-loading candidate",
    "corrupt candidate",
    "bit-flipped serving model",
    "nested-JSON flood",
    "over-long prompts",
    "canary-steering client",
    "varied chat and streamed traffic",
    "poisoning client",
    "hostile-body flood",
    "token-limit burst",
    "Redis stopped under chat traffic",
    "Redis killed under chat traffic",
    "SQLite registry write-locked",
    "Postgres restarted under chat traffic",
    "worker killed mid-stream",
    "adapter promotion and rollback under streams",
)
_NOTES = (
    "candidate_failures",
    "retried",
    "max_wait_s",
    "nested_p99_ms",
    "hostile_p99_ms",
    "version_errors",
    "dropped_by_client",
    "connections_cut",
    "tokens_used",
)
_SHOWN_AT_ZERO = ("overshoot_tokens",)  # a figure the row exists to report, 0 included


class FaultTable:
    """Rows by fault name; a rerun of one test replaces its row, the others stay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            self.rows = {row["fault"]: row for row in json.loads(path.read_text())["rows"]}

    def add(
        self,
        fault: str,
        what: str,
        answers: list[Answer],
        judged: Callable[[Answer], bool] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Count ``answers`` into a row. ``judged`` marks the 500s of a failing canary: the
        candidate's real failures, its verdict's evidence, shown apart and never "lost"."""
        failing = [a for a in answers if judged is not None and judged(a)]
        kept = [a for a in answers if not (judged is not None and judged(a))]
        counts = count(kept).as_dict()
        counts["sent"] += len(failing)
        if judged is not None:
            counts["candidate_failures"] = len(failing)
        counts["retried"] = sum(a.retried for a in answers)
        row = {"fault": fault, "what": what, **counts, **extra}
        self.rows[fault] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"rows": list(self.rows.values())}, indent=2) + "\n")
        return row


def _note(row: dict[str, Any]) -> str:
    parts = [f"{key.replace('_', ' ')} {row[key]}" for key in _NOTES if row.get(key)]
    parts += [f"{key.replace('_', ' ')} {row[key]}" for key in _SHOWN_AT_ZERO if key in row]
    if "verdict" in row:
        parts.append(f"verdict: {row['verdict']}")
    if "ready_after_s" in row:
        parts.append(f"ready {row['ready_after_s']} s after the registry came back")
    return "; ".join(parts)


def render(rows: list[dict[str, Any]]) -> str:
    rank = {name: i for i, name in enumerate(ORDER)}
    ordered = sorted(rows, key=lambda row: rank.get(row["fault"], len(ORDER)))
    lines = [
        "| fault | what the test does | sent | 2xx | 4xx | 503 + Retry-After | lost | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in ordered:
        lines.append(
            f"| {row['fault']} | {row['what']} | {row['sent']} | {row['ok']} | "
            f"{row['client_errors']} | {row['unavailable']} | {row['lost']} | {_note(row)} |"
        )
    return "\n".join(lines)


def table_in(doc: str) -> str:
    return doc.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def with_table(doc: str, rows: list[dict[str, Any]]) -> str:
    """``doc`` with the table between its markers replaced by the one ``rows`` give."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render(rows)}\n{END}{tail}"
