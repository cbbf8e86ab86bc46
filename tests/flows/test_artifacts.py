"""What the Prefect artifacts hold: narrow rows, rounded figures, the plot inlined."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from flows.artifacts import gate_check_rows, inline_plot, validation_rows
from gates.text.report import PLOT_ALT

pytestmark = pytest.mark.unit


def test_gate_check_rows_are_four_rounded_columns() -> None:
    verdict = {
        "checks": [
            {"name": "min_accuracy", "value": 0.9413333333333334, "threshold": 0.85,
             "comparison": ">=", "outcome": "pass", "detail": "a long sentence " * 20},
            {"name": "champion_evaluated", "value": None, "threshold": None, "comparison": "",
             "outcome": "warn", "detail": "could not"},
        ]
    }  # fmt: skip
    rows = gate_check_rows(verdict)
    assert rows == [
        {"check": "min_accuracy", "value": "0.9413", "threshold": "≥ 0.8500", "result": "pass"},
        {"check": "champion_evaluated", "value": "-", "threshold": "-", "result": "warn"},
    ]


def test_validation_rows_put_problems_first_and_leave_the_wording_out() -> None:
    checks = [
        {"split": "train", "check": "duplicates", "outcome": "passed", "summary": "x" * 300},
        {"split": "test", "check": "train_leakage", "outcome": "failed", "summary": "y" * 300},
    ]
    rows = validation_rows(checks)
    assert rows[0] == {"check": "train_leakage", "split": "test", "outcome": "failed"}
    assert all(set(row) == {"check", "split", "outcome"} for row in rows)


def test_the_plot_is_inlined_in_place_of_its_link(tmp_path: Path) -> None:
    png = tmp_path / "per_class_f1.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    report = f"## Gate verdict\n\n![{PLOT_ALT}](per_class_f1.png)\n"
    inlined = inline_plot(report, str(png))
    encoded = base64.b64encode(png.read_bytes()).decode()
    assert inlined == f"## Gate verdict\n\n![{PLOT_ALT}](data:image/png;base64,{encoded})\n"
    assert inline_plot(report, str(tmp_path / "gone.png")) == report


def test_a_comparison_is_a_side_by_side_table_differing_first() -> None:
    from flows.artifacts import comparison_rows

    rows = [
        {"request": "wire   money " + "x" * 100, "answer_a": "transfer", "answer_b": "translate",
         "same": False, "seen": 5},
        {"request": "set a timer", "answer_a": "timer", "answer_b": "timer", "same": True,
         "seen": 3},
    ]  # fmt: skip
    table = comparison_rows("intents:v1", "intents:v2", rows)
    assert list(table[0]) == ["input", "intents:v1", "intents:v2", "agree", "asked"]
    assert table[0]["input"].startswith("wire money x") and len(table[0]["input"]) == 80
    assert [r["agree"] for r in table] == ["differs", "same"] and table[0]["asked"] == "5"
