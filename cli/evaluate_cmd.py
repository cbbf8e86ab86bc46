"""`conveyor evaluate VERSION`: champion against challenger, verdict recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import _context
from cli._render import json_text, render_comparison, render_verdict
from conveyor.errors import ExitCode

__all__ = ["evaluate"]


def evaluate(
    version: Annotated[
        str, typer.Argument(help="DEPLOYMENT:vN, DEPLOYMENT:latest or DEPLOYMENT@ALIAS.")
    ],
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="Champion: an alias of the deployment (production), a version, or 'none'.",
        ),
    ] = "production",
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override the version's recipe, e.g. --set gates.min_accuracy=0.9."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for evaluation.md/.json and the plot.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Evaluate a version and the model now serving on the same test split; apply the gates.

    Exit 0 when the gates pass, 1 when they fail (the reason is printed and stored with the
    version), 2 for unusable input.
    """
    from gates import evaluate_version

    outcome = evaluate_version(
        _context.registry(),
        _context.settings(),
        version,
        against=against,
        overrides=overrides or [],
        out_dir=out,
    )
    if as_json:
        typer.echo(json_text(outcome.verdict.as_dict()))
    else:
        champion = outcome.champion
        if outcome.candidate.error is None:
            compared = champion.metrics if champion and champion.error is None else None
            typer.echo(render_comparison(outcome.candidate.metrics, compared))
            typer.echo("")
        paths = {"report_path": str(outcome.report_path), "plot_path": outcome.plot_path}
        typer.echo(render_verdict(outcome.verdict.as_dict() | paths))
    if not outcome.verdict.passed:
        raise typer.Exit(ExitCode.SAID_NO)
