"""The validation report renders as written: narrow tables, escaped text, round figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_checks import Outcome, Report, validate_recipe, write_reports
from data_checks.report import Check
from tests.data_checks.conftest import MakeRecipe
from tests.markdown_check import assert_renders_literally

pytestmark = pytest.mark.unit


def test_text_with_markdown_characters_renders_literally(tmp_path: Path) -> None:
    report = Report("my_deploy", "classification", "2026-12-03T00:00:00Z")
    report.splits = {
        "train": {"rows": 15100, "classes": 151, "imbalance_ratio": 33.33333, "length": {
            "median": 38.0, "p99": 85.5, "max": 136.0}},
    }  # fmt: skip
    report.add(Check("class_imbalance", "train", Outcome.FAILED, ">= 20.0 * the smallest | a_b_c"))
    report.add(Check("duplicates", "train", Outcome.WARNING, "e.g. ['*bold*', '_x_', '<b>']"))
    report.add(Check("expect_column_to_exist(text)", "train", Outcome.PASSED, "ok"))
    report.drift = {
        "compared": True, "reference": "d:v1", "reference_source": "metrics",
        "label_psi": 0.123456789, "length_psi": 0.0101010101, "new_labels": ["new_one"],
        "missing_labels": [], "largest_label_shifts": [
            {"label": "book_flight", "reference_share": 0.0066, "current_share": 0.0123}],
    }  # fmt: skip
    _, md_path = write_reports(report, tmp_path)
    markdown = md_path.read_text()
    found = assert_renders_literally(markdown)
    text = "".join(found.text)
    assert ">= 20.0 * the smallest | a_b_c" in text
    assert "['*bold*', '_x_', '<b>']" in text
    assert "0.123456789" not in markdown and "label PSI 0.1235" in text
    splits, checks, shifts = found.tables
    assert splits[1] == ["train", "15,100", "151", "33.3", "38", "85.5"]
    assert checks[0] == ["check", "train"] and checks[1] == ["class_imbalance", "FAILED"]
    assert shifts[1] == ["book_flight", "0.7%", "1.2%"]
    assert max(len(table[0]) for table in found.tables) <= 6


def test_the_real_report_keeps_long_wording_out_of_its_tables(
    make_recipe: MakeRecipe, tmp_path: Path
) -> None:
    report = validate_recipe(make_recipe())
    _, md_path = write_reports(report, tmp_path)
    found = assert_renders_literally(md_path.read_text())
    checks = found.tables[1]
    assert checks[0] == ["check", "train", "validation", "test"]
    longest = max(len(cell) for row in checks[1:] for cell in row[1:])
    assert longest <= len("skipped")
    assert any("also appear in train" in line for line in found.text)  # the wording, below
