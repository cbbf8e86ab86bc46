"""Input that cannot be used at all: status 'unusable', exit code 2, the reason in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.recipe import Recipe
from data_checks import Status, validate_recipe, write_reports
from tests.data_checks.conftest import MakeRecipe

pytestmark = pytest.mark.unit


def _unusable(recipe: Recipe, tmp_path: Path) -> dict[str, object]:
    import json

    report = validate_recipe(recipe)
    assert report.status is Status.UNUSABLE and report.exit_code == 2
    json_path, md_path = write_reports(report, tmp_path / "out")
    assert report.error is not None and report.error in md_path.read_text()
    loaded: dict[str, object] = json.loads(json_path.read_text())
    assert loaded["exit_code"] == 2
    return loaded


def test_truncated_json_line_names_file_and_line(make_recipe: MakeRecipe, tmp_path: Path) -> None:
    recipe = make_recipe()
    test_file = recipe.data.test
    assert test_file is not None
    text = test_file.read_text()
    test_file.write_text(text[: len(text) - 25])  # cut the last line mid-record
    lines = text.count("\n")
    loaded = _unusable(recipe, tmp_path)
    assert f"test.jsonl:{lines}: invalid JSON" in str(loaded["error"])


def test_empty_split(make_recipe: MakeRecipe, tmp_path: Path) -> None:
    recipe = make_recipe()
    recipe.data.validation.write_text("")
    loaded = _unusable(recipe, tmp_path)
    assert "validation.jsonl: empty file" in str(loaded["error"])


def test_bad_encoding_names_the_line(make_recipe: MakeRecipe, tmp_path: Path) -> None:
    recipe = make_recipe()
    raw = recipe.data.train.read_bytes().split(b"\n")
    raw[9] = raw[9].replace(b"i ", b"\xff\xfe ", 1)
    recipe.data.train.write_bytes(b"\n".join(raw))
    loaded = _unusable(recipe, tmp_path)
    assert "train.jsonl:10: not UTF-8" in str(loaded["error"])
