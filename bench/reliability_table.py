"""docs/reliability.md's fault table, from the counts the fault suite wrote.

    CONVEYOR_FAULTS_OUT=docs/reliability.json .venv/bin/python -m pytest tests/faults -m faults
    .venv/bin/python -m bench.reliability_table

The table sits between two markers in the doc; everything else there is prose kept by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JSON = ROOT / "docs" / "reliability.json"
DOC = ROOT / "docs" / "reliability.md"
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
)
_NOTES = ("candidate_failures", "retried", "max_wait_s", "nested_p99_ms", "version_errors")


def _note(row: dict[str, Any]) -> str:
    parts = [f"{key.replace('_', ' ')} {row[key]}" for key in _NOTES if row.get(key)]
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


def main() -> None:
    rows = json.loads(JSON.read_text())["rows"]
    doc = DOC.read_text()
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{render(rows)}\n{END}{tail}")
    missing = [name for name in ORDER if name not in {row["fault"] for row in rows}]
    if missing:
        print(f"rows missing from {JSON.name}: {missing}", file=sys.stderr)


if __name__ == "__main__":
    main()
