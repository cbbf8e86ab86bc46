"""The fault suite: each test injects one fault for real and reports a row of counts.

Rows go to the JSON file named by ``CONVEYOR_FAULTS_OUT`` (``docs/reliability.json`` when
the table in docs/reliability.md is refreshed, see ``bench/reliability_table.py``); without it
they go to a file in the temp folder, so a plain test run leaves the docs alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.traffic import Answer, count
from tests.serving.conftest import tokenizer

__all__ = ["FaultTable", "fault_table", "tokenizer"]

OUT_ENV = "CONVEYOR_FAULTS_OUT"


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


@pytest.fixture(scope="session")
def fault_table() -> Iterator[FaultTable]:
    default = Path(tempfile.gettempdir()) / "conveyor-faults.json"
    yield FaultTable(Path(os.environ.get(OUT_ENV) or default))
