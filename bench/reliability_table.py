"""docs/reliability.md's fault table, from the counts the fault suite wrote.

    CONVEYOR_FAULTS_OUT=docs/reliability.json .venv/bin/python -m pytest tests/faults -m faults
    .venv/bin/python -m bench.reliability_table

The table sits between two markers in the doc (``testbed.fault_table``); everything else there
is prose kept by hand.
"""

from __future__ import annotations

import json
import sys

from testbed.fault_table import DOC, JSON, ORDER, with_table


def main() -> None:
    rows = json.loads(JSON.read_text())["rows"]
    DOC.write_text(with_table(DOC.read_text(), rows))
    missing = [name for name in ORDER if name not in {row["fault"] for row in rows}]
    if missing:
        print(f"rows missing from {JSON.name}: {missing}", file=sys.stderr)


if __name__ == "__main__":
    main()
