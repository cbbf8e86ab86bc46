"""The `conveyor validate` verb: exit codes, one line per failure, both reports written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from conveyor.errors import ExitCode
from conveyor.recipe import Recipe
from testbed.paths import RECIPES_DIR, REPO_ROOT
from tests.data_checks.conftest import MakeRecipe

pytestmark = pytest.mark.unit


def test_real_cli_validates_the_demo_recipe(conveyor_home: Path, tmp_path: Path) -> None:
    """The command from the issue, as a user runs it: exit 0, JSON and Markdown reports."""
    out = tmp_path / "reports"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "validate",
            str(RECIPES_DIR / "clinc150-minilm.yaml"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=120,
    )
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "great expectations: train (15,100 rows)" in result.stderr  # progress lines
    report = json.loads((out / "validation.json").read_text())
    assert report["status"] == "passed" and report["exit_code"] == 0
    assert report["data_fingerprint"].startswith("sha256:")
    assert report["drift"]["compared"] is False  # nothing serves in a fresh home
    assert "# Data validation: clinc150-minilm" in (out / "validation.md").read_text()


def _invoke(recipe: Recipe, out: Path, *extra: str) -> tuple[int, str]:
    source = recipe.data.train.parent / "recipe.yaml"
    result = CliRunner().invoke(app, ["validate", str(source), "--out", str(out), "-q", *extra])
    return result.exit_code, result.output


def test_failed_checks_exit_1_with_one_line_each(
    conveyor_home: Path, make_recipe: MakeRecipe, tmp_path: Path
) -> None:
    recipe = make_recipe()
    code, output = _invoke(recipe, tmp_path / "out", "--no-drift", "--set", "model.max_length=8")
    assert code == ExitCode.SAID_NO
    lines = [line for line in output.splitlines() if line.startswith("FAILED ")]
    assert {line.split()[1] for line in lines} == {"train", "validation", "test"}
    assert all("token_truncation" in line for line in lines)
    assert json.loads((tmp_path / "out" / "validation.json").read_text())["exit_code"] == 1


def test_unusable_input_exits_2_and_still_writes_the_report(
    conveyor_home: Path, make_recipe: MakeRecipe, tmp_path: Path
) -> None:
    recipe = make_recipe()
    recipe.data.train.write_text('{"text": "hello", "label": "greeting"}\n{"text": "cut')
    code, output = _invoke(recipe, tmp_path / "out", "--no-drift")
    assert code == ExitCode.BAD_INPUT
    assert "train.jsonl:2: invalid JSON" in output
    report = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert report["status"] == "unusable" and "train.jsonl:2" in report["error"]
