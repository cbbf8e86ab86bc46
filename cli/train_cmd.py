"""`conveyor train RECIPE`: fine-tune with DeepSpeed, register the version, print it last."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli import _context
from conveyor.recipe import load_recipe

__all__ = ["train"]


def train(
    file: Annotated[Path, typer.Argument(metavar="RECIPE", help="The recipe YAML file.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set training.max_steps=50 (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint of this recipe.")
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="CPU processes: 1 in this process; N through the DeepSpeed launcher (gloo).",
        ),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus",
            min=0,
            help="0: train on CPU; N: N GPUs per node via the DeepSpeed launcher.",
        ),
    ] = None,
    hostfile: Annotated[
        Path | None,
        typer.Option("--hostfile", help="DeepSpeed hostfile for multi-node runs (needs --gpus)."),
    ] = None,
    ds_config: Annotated[
        Path | None,
        typer.Option(
            "--ds-config",
            help="DeepSpeed JSON merged over conveyor's (e.g. infra/deepspeed/zero2.json).",
        ),
    ] = None,
) -> None:
    """Fine-tune the recipe's model, write its model folder, register it; print the VERSION."""
    import training

    topology = {"training.processes": processes, "training.gpus": gpus}
    extra = [*(overrides or []), *(f"{k}={v}" for k, v in topology.items() if v is not None)]
    recipe = load_recipe(file, extra)
    logging.getLogger("training").setLevel(logging.INFO)
    spec = training.spec_for(recipe, hostfile=hostfile, ds_config=ds_config)
    outcome = training.run(
        recipe, _context.settings(), launch=spec, resume=resume, registry=_context.registry()
    )
    shown = ", ".join(
        f"{k.removeprefix('validation_')} {v:.4f}"
        for k, v in outcome.metrics.items()
        if k.startswith("validation_")
    )
    typer.echo(f"trained {outcome.version}: validation {shown}", err=True)
    typer.echo(str(outcome.version))
