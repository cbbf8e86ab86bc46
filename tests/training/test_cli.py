"""`conveyor train` in a subprocess: bad input gives one line and an exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.errors import ExitCode
from testbed.paths import REPO_ROOT
from tests.training.conftest import RecipeFactory, subprocess_env

pytestmark = pytest.mark.integration


def _train(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "train", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for needle in needles:
        assert needle in last
    assert result.stdout == ""


def test_base_that_is_not_a_folder(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    recipe = make_recipe()
    missing = tmp_path / "no-such-model"
    result = _train(tmp_path, str(recipe), "--set", f"model.base={missing}")
    _one_line_error(result, ExitCode.BAD_INPUT, f"model.base: no model folder at {missing}")


def test_base_folder_without_weights(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}')
    result = _train(tmp_path, str(make_recipe()), "--set", f"model.base={broken}")
    _one_line_error(result, ExitCode.TRAINING_FAILED, f"model.base: {broken}: cannot load")


def test_label_count_mismatch(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    result = _train(tmp_path, str(make_recipe()), "--set", "model.config={num_labels: 7}")
    _one_line_error(
        result,
        ExitCode.TRAINING_FAILED,
        "model.config.num_labels is 7 but the train split has 4 labels",
    )


def test_gpus_without_a_gpu(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the launcher would really start")
    result = _train(tmp_path, str(make_recipe()), "--gpus", "2")
    _one_line_error(
        result, ExitCode.TRAINING_FAILED, "training.gpus is 2 but no CUDA GPU is visible"
    )
