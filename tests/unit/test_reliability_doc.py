"""docs/reliability.md's fault table is the one the fault suite's counts give, and no row lost
a request (the table is rebuilt by ``python -m bench.reliability_table``)."""

from __future__ import annotations

import json

import pytest

from testbed.fault_table import DOC, JSON, ORDER, render, table_in

pytestmark = pytest.mark.unit


def test_the_fault_table_is_built_from_the_suites_counts() -> None:
    rows = json.loads(JSON.read_text())["rows"]
    assert table_in(DOC.read_text()) == render(rows), "run: python -m bench.reliability_table"
    assert {row["fault"] for row in rows} >= set(ORDER)


def test_no_fault_lost_a_request() -> None:
    rows = json.loads(JSON.read_text())["rows"]
    assert [row["fault"] for row in rows if row["lost"] != 0] == []
    for row in rows:
        assert row["sent"] == row["ok"] + row["client_errors"] + row["unavailable"] + row[
            "lost"
        ] + row.get("candidate_failures", 0)
