"""docs/reliability.md's fault table, from the counts the fault suite wrote.

    CONVEYOR_FAULTS_OUT=docs/reliability.json .venv/bin/python -m pytest tests/faults -m faults
    .venv/bin/python -m bench.reliability_table

The table sits between two markers in the doc (``testbed.fault_table``); everything else there
is prose kept by hand.

    .venv/bin/python -m bench.reliability_table --check RUN.json

checks one run of the suite by its own counts (CI runs it on the rows its test run wrote):
it prints that run's table and fails when a row lost a request or a fault of the table did
not run. So a code change that loses requests fails CI, whatever the committed table says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from testbed.fault_table import DOC, JSON, ORDER, render, with_table


def _rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(path.read_text())["rows"]
    return rows


def check(path: Path) -> int:
    """0 when the run in ``path`` has every fault of the table and lost nothing, else 1."""
    if not path.is_file():
        print(f"{path}: no fault rows were written (did the fault suite run?)", file=sys.stderr)
        return 1
    rows = _rows(path)
    print(render(rows))
    missing = [name for name in ORDER if name not in {row["fault"] for row in rows}]
    lost = [f"{row['fault']} ({row['lost']})" for row in rows if row["lost"] != 0]
    if missing:
        print(f"faults that did not run: {missing}", file=sys.stderr)
    if lost:
        print(f"rows that lost requests: {lost}", file=sys.stderr)
    return 1 if missing or lost else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", type=Path, help="a fault suite run's JSON to check")
    args = parser.parse_args(argv)
    if args.check is not None:
        return check(args.check)
    rows = _rows(JSON)
    DOC.write_text(with_table(DOC.read_text(), rows))
    missing = [name for name in ORDER if name not in {row["fault"] for row in rows}]
    if missing:
        print(f"rows missing from {JSON.name}: {missing}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
