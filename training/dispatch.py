"""``run(recipe, settings, launch=LaunchSpec(...))``: the one entry the CLI and the flow call.

It decides where the fine-tune runs: in this process (1 CPU process, no hostfile) or
N processes through the DeepSpeed launcher (CPU processes on gloo, local GPUs, other
nodes). Either way rank 0 of :func:`training.fine_tune.fine_tune` writes the model
folder and registers the version, and ``run`` returns the same ``TrainResult``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from conveyor.recipe import Recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from training import launch as launcher
from training.fine_tune import TrainResult, fine_tune
from training.launch import LaunchSpec

__all__ = ["run", "spec_for"]


def spec_for(
    recipe: Recipe,
    *,
    hostfile: Path | None = None,
    ds_config: Path | None = None,
    master_port: int | None = None,
) -> LaunchSpec:
    """The launch the recipe asks for (``training.processes`` / ``training.gpus``)."""
    t = recipe.training
    return LaunchSpec(
        processes=t.processes,
        gpus=t.gpus,
        hostfile=hostfile,
        ds_config=ds_config,
        master_port=master_port,
    )


def _with_topology(recipe: Recipe, spec: LaunchSpec) -> Recipe:
    """The recipe as run: its processes and gpus are the launch's (checked on resume)."""
    t = recipe.training
    if (t.processes, t.gpus) == (spec.processes, spec.gpus):
        return recipe
    training = t.model_copy(update={"processes": spec.processes, "gpus": spec.gpus})
    return recipe.model_copy(update={"training": training})


def run(
    recipe: Recipe,
    settings: Settings,
    *,
    launch: LaunchSpec | None = None,
    resume: bool = False,
    registry: Registry | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Fine-tune and register; in this process or through the launcher, as ``launch`` says.

    ``registry`` is used by an in-process run; launcher ranks open their own (other
    processes). Nothing is written to stdout: DeepSpeed's prints go to stderr.
    """
    spec = launch or spec_for(recipe)
    recipe = _with_topology(recipe, spec)
    if not spec.in_process:
        found = launcher.launch(recipe.model_dump(mode="json"), spec, resume=resume)
        return TrainResult(
            version=str(found["version"]),
            model_dir=Path(found["model_dir"]),
            metrics=dict(found["metrics"]),
            steps=int(found["steps"]),
            stopped_early=bool(found.get("stopped_early", False)),
            history=list(found.get("history", [])),
        )
    extra = spec.ds_config
    if isinstance(extra, Path):
        from training.engine import read_config_file

        extra = read_config_file(extra)
    with contextlib.redirect_stdout(sys.stderr):
        return fine_tune(
            recipe,
            settings,
            resume=resume,
            show_progress=show_progress,
            registry=registry,
            deepspeed_config=extra,
        )
