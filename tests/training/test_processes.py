"""Two CPU processes through the real DeepSpeed launcher (gloo), ZeRO 2 and 3.

The same loss curve as one process at the same global batch; a run killed with
SIGKILL resumes and registers; one rank killed gives an error naming it and leaves a
checkpoint that loads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.recipe import load_recipe
from conveyor.registry import open_registry
from conveyor.settings import Settings
from testbed.paths import REPO_ROOT
from tests.training.conftest import RecipeFactory, subprocess_env
from training import LaunchSpec, checkpoint_dir, run

pytestmark = pytest.mark.integration

# Dropout draws differ between one process and two (each rank has its own generator).
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# fp32 on both sides; what differs is only the order of float sums: two half-batch mean
# losses (and gradients) all-reduced and halved, against one mean over 8 (padding each
# half to its own length is masked out exactly). Measured on this CPU over 8 AdamW steps,
# ZeRO 2 and 3: at most 2.4e-7 (2 ulp of a loss of 1.39). 1e-5 leaves 40x room and still
# fails on a change of data order, batch split or gradient sync: consecutive steps' training
# losses here differ by 1e-3 to 6e-2.
LOSS_TOLERANCE = 1e-5


def _losses(history: list[dict[str, float]]) -> list[float]:
    """Per step: the training loss (mean over the global batch) and the validation loss."""
    return [v for entry in history for v in (entry["train_loss"], entry["loss"])]


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_processes_follow_the_one_process_loss_curve(
    make_recipe: RecipeFactory, tmp_path: Path, settings: Settings, zero_stage: int
) -> None:
    training = {"max_steps": 8, "eval_every_steps": 1, "checkpoint_every_steps": 100}
    one = load_recipe(
        make_recipe(training={**training, "batch_size": 8}, model={"config": NO_DROPOUT})
    )
    reference = run(one, Settings(home=tmp_path / "one"), show_progress=False)

    two = load_recipe(
        make_recipe(
            training={**training, "batch_size": 4, "zero_stage": zero_stage, "processes": 2},
            model={"config": NO_DROPOUT},
        )
    )
    result = run(two, settings, launch=LaunchSpec(processes=2))  # ranks: CONVEYOR_HOME

    assert result.version is not None and result.model_dir is not None
    assert (result.model_dir / "model.safetensors").is_file()
    assert len(result.history) == len(reference.history) == 8
    assert _losses(result.history) == pytest.approx(_losses(reference.history), abs=LOSS_TOLERANCE)
    registry = open_registry(settings)
    assert registry.get_version(result.version).metrics["train_steps"] == 8.0
    registry.close()


def _train(recipe: Path, home: Path, *extra: str) -> subprocess.Popen[str]:
    """`conveyor train` in its own process group (the launcher and ranks join it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "train", str(recipe), *extra],
        cwd=REPO_ROOT,
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_checkpoint(directory: Path, at_least: int, process: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 240
    latest = directory / "latest"
    while time.monotonic() < deadline:
        # DeepSpeed rewrites `latest` in place: read between its truncate and write, it is empty
        written = latest.read_text().strip() if latest.is_file() else ""
        if written:
            step = int(written.removeprefix("step-"))
            if step >= at_least:
                return step
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be killed:\n{process.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.005)
    pytest.fail("no checkpoint within 240 s")


def _worker_pid(parent: int, rank: int) -> int:
    import psutil

    for child in psutil.Process(parent).children(recursive=True):
        try:
            if "training.worker" in child.cmdline() and child.environ().get("RANK") == str(rank):
                return int(child.pid)
        except psutil.NoSuchProcess:
            continue
    pytest.fail(f"no rank {rank} worker under pid {parent}")


def _two_process_recipe(make_recipe: RecipeFactory) -> Path:
    # 4 epochs x 20 global batches of 2 x 4 = 80 steps; checkpoints every 7 steps.
    training = {"epochs": 4, "batch_size": 4, "processes": 2, "zero_stage": 3}
    return make_recipe(training=training, model={"config": NO_DROPOUT})


def _resume_and_check(recipe: Path, home: Path, directory: Path, step: int) -> None:
    resumed = _train(recipe, home, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    tag = directory / f"step-{step:08d}"
    assert f"resumed from {tag} (step {step}," in err
    version = out.strip()
    registry = open_registry(Settings(home=home))
    record = registry.get_version(version)
    registry.close()
    assert record.metrics["train_steps"] == 80.0 and record.metrics["train_samples"] == 640.0


def test_killed_two_process_run_resumes_and_registers(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    recipe = _two_process_recipe(make_recipe)
    home = tmp_path / "home"
    directory = checkpoint_dir(Settings(home=home), "tiny-clinc")
    first = _train(recipe, home)
    step = _wait_for_checkpoint(directory, 14, first)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI, the launcher and both ranks, at once
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    step = int((directory / "latest").read_text().strip().removeprefix("step-"))
    assert 14 <= step < 80
    _resume_and_check(recipe, home, directory, step)


def test_one_rank_killed_names_it_and_leaves_a_checkpoint_that_loads(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    recipe = _two_process_recipe(make_recipe)
    home = tmp_path / "home"
    directory = checkpoint_dir(Settings(home=home), "tiny-clinc")
    first = _train(recipe, home)
    _wait_for_checkpoint(directory, 7, first)
    victim = _worker_pid(first.pid, rank=1)
    os.kill(victim, signal.SIGKILL)
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the DeepSpeed launcher exited with"), last
    assert f"rank 1 (pid {victim}) died without an error" in last
    assert "rerun with --resume" in last
    step = int((directory / "latest").read_text().strip().removeprefix("step-"))
    _resume_and_check(recipe, home, directory, step)
