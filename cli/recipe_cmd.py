"""`conveyor recipe ...`: check a recipe before anything runs on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from conveyor.errors import ConveyorError
from conveyor.recipe import BUILTIN_MODELS, load_recipe
from conveyor.recipe.reference import README_END, README_START, markdown_reference

__all__ = ["recipe_app"]

recipe_app = typer.Typer(help="Check and show recipes.", no_args_is_help=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: --set training.max_steps=50 (repeatable)."),
]


@recipe_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The recipe YAML file.")],
    overrides: SetOption = None,
    show: Annotated[bool, typer.Option("--show", help="Print the resolved recipe.")] = False,
) -> None:
    """Validate a recipe: keys, types, data files, base model. Exit 0 when usable."""
    recipe = load_recipe(file, overrides or [])
    if show:
        shown = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        typer.echo(shown, nl=False)
        return
    base = recipe.model.base
    kind = (
        "built-in"
        if base in BUILTIN_MODELS
        else ("local" if Path(base).is_absolute() else "hub id")
    )
    typer.echo(f"ok: {file} ({recipe.name}, {recipe.task})")
    for split, path in recipe.data.splits().items():
        typer.echo(f"  data.{split}: {path}")
    typer.echo(f"  model.base: {base} ({kind})")
    if kind == "hub id":
        typer.echo(
            "  note: hub ids load only from the local Hugging Face cache unless HF_HUB_OFFLINE=0",
            err=True,
        )


@recipe_app.command("reference")
def reference(
    update: Annotated[
        Path | None,
        typer.Option("--update", help="Rewrite the table between the markers in this file."),
    ] = None,
) -> None:
    """Print the recipe reference (every key, type, default, meaning) as Markdown."""
    table = markdown_reference()
    if update is None:
        typer.echo(table)
        return
    text = update.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ConveyorError(f"{update}: markers {README_START!r} ... {README_END!r} not found")
    updated = text[: start + len(README_START)] + "\n" + table + "\n" + text[end:]
    update.write_text(updated, encoding="utf-8")
    typer.echo(f"updated the recipe reference in {update}")
