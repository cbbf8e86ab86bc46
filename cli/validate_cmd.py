"""`conveyor validate RECIPE`: the data gate before training (exit 0 pass, 1 failed, 2 unusable)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli import _context
from conveyor.recipe import load_recipe

__all__ = ["validate"]

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a field: --set checks.max_leakage_share=0.02 (repeatable)."
    ),
]


def _progress(quiet: bool) -> Callable[[str], None]:
    started = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            typer.echo(f"[{time.perf_counter() - started:6.1f}s] {message}", err=True)

    return say


def validate(
    file: Annotated[Path, typer.Argument(help="The recipe YAML file.")],
    overrides: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Report folder (default CONVEYOR_HOME/reports/NAME/validate-TIME)."
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Compare drift with this version (NAME:vN, NAME@alias); default NAME@production.",
        ),
    ] = None,
    no_drift: Annotated[
        bool, typer.Option("--no-drift", help="Skip the drift comparison (no registry access).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Validate a recipe's data with Great Expectations; write validation.json and .md."""
    import data_checks  # heavy (pandas; GE on first run): only when this verb runs

    recipe = load_recipe(file, overrides or [])
    say = _progress(quiet)
    found = None
    if not no_drift:
        found = data_checks.find_reference(_context.registry(), recipe.name, reference)
    report = data_checks.validate_recipe(recipe, reference=found, progress=say)
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = _context.settings().home / "reports" / recipe.name / f"validate-{stamp}"
    json_path, md_path = data_checks.write_reports(report, out)
    for check in report.failures + report.warnings:
        typer.echo(check.line())
    if report.error:
        typer.echo(f"error: {report.error}", err=True)
    typer.echo(f"{report.summary()}; reports: {json_path} {md_path}")
    raise typer.Exit(report.exit_code)
