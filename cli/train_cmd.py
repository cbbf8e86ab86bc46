"""`conveyor train RECIPE`: fine-tune with DeepSpeed, register the version, print it last."""

from __future__ import annotations

import contextlib
import logging
import sys
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
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus",
            min=0,
            help="0: one CPU process; N: N GPUs per node via the DeepSpeed launcher.",
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
    settings = _context.settings()
    extra = [*(overrides or []), *([f"training.gpus={gpus}"] if gpus is not None else [])]
    recipe = load_recipe(file, extra)
    logging.getLogger("training").setLevel(logging.INFO)
    from training.engine import read_config_file

    infra = read_config_file(ds_config) if ds_config else None
    if recipe.training.gpus > 0:
        from training.launch import launch

        result = launch(
            file,
            extra,
            gpus=recipe.training.gpus,
            resume=resume,
            hostfile=hostfile,
            ds_config=ds_config,
        )
        version, metrics = str(result["version"]), dict(result["metrics"])
    else:
        from training.fine_tune import fine_tune

        # DeepSpeed prints to stdout (accelerator notice, JIT builds): keep stdout for VERSION.
        with contextlib.redirect_stdout(sys.stderr):
            outcome = fine_tune(
                recipe,
                settings,
                resume=resume,
                registry=_context.registry(),
                deepspeed_config=infra,
            )
        version, metrics = str(outcome.version), outcome.metrics
    shown = ", ".join(
        f"{k.removeprefix('validation_')} {v:.4f}"
        for k, v in metrics.items()
        if k.startswith("validation_")
    )
    typer.echo(f"trained {version}: validation {shown}", err=True)
    typer.echo(version)
