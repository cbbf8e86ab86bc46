"""SIGKILL a real `conveyor train` mid-epoch; `--resume` ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.errors import ExitCode
from conveyor.recipe import load_recipe
from conveyor.registry import open_registry
from conveyor.settings import Settings
from testbed.paths import REPO_ROOT
from tests.training.conftest import RecipeFactory, subprocess_env
from training import checkpoint_dir, fine_tune

pytestmark = pytest.mark.integration

BATCHES_PER_EPOCH = 20  # 160 rows / batch 8
COMPARED = (
    "validation_loss",
    "validation_accuracy",
    "validation_macro_f1",
    "train_loss",
    "train_steps",
    "train_samples",
)


def _train(recipe: Path, home: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "train", str(recipe), *extra],
        cwd=REPO_ROOT,
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(directory: Path, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    latest = directory / "latest"
    while time.monotonic() < deadline:
        # DeepSpeed rewrites `latest` in place: read between its truncate and write, it is empty
        written = latest.read_text().strip() if latest.is_file() else ""
        if written and int(written.removeprefix("step-")) >= at_least:
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be killed:\n{process.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.005)
    pytest.fail("no checkpoint within 180 s")


def test_killed_run_resumes_to_the_same_metrics(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    # 4 epochs x 20 batches = 80 steps; checkpoints every 7 steps never fall on an epoch edge.
    path = make_recipe(training={"epochs": 4, "eval_every_steps": 10})

    reference = fine_tune(
        load_recipe(path), Settings(home=tmp_path / "reference"), show_progress=False
    )

    home = tmp_path / "interrupted"
    directory = checkpoint_dir(Settings(home=home), "tiny-clinc")
    first = _train(path, home)
    _wait_for_checkpoint(directory, 14, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    tag = (directory / "latest").read_text().strip()
    step = int(tag.removeprefix("step-"))
    assert 14 <= step < 80 and step % BATCHES_PER_EPOCH != 0, "not killed mid-epoch"

    second = _train(path, home, "--resume")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert f"resumed from {directory / tag} (step {step}," in err
    version = out.strip()
    assert version == "tiny-clinc:v1"  # stdout is the VERSION alone; the killed run registered none

    registry = open_registry(Settings(home=home))
    try:
        resumed = registry.resolve(version)
    finally:
        registry.close()
    for key in COMPARED:
        assert resumed.metrics[key] == pytest.approx(reference.metrics[key], rel=1e-5), key
    # Same data order, same trajectory: every validation during training matches too.
    history = json.loads(Path(str(resumed.artifact_uri), "metrics.json").read_text())["history"]
    assert [h["step"] for h in history] == [h["step"] for h in reference.history]
    for ours, theirs in zip(history, reference.history, strict=True):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert ours["accuracy"] == theirs["accuracy"]


def test_resume_without_checkpoints_says_so(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "train", str(make_recipe()), "--resume"],
        cwd=REPO_ROOT,
        env=subprocess_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == ExitCode.TRAINING_FAILED
    assert result.stderr.strip().splitlines()[-1].startswith("error: --resume: no checkpoints in")
    assert "Traceback" not in result.stderr
