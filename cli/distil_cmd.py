"""`conveyor distil VERSION --student layers=K`: a smaller student trained on the version's
soft targets, judged against it (parity) and the champion, printed last."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from cli import _context
from conveyor.errors import ExitCode

__all__ = ["distil"]


def distil(
    version: Annotated[
        str, typer.Argument(help="The teacher: DEPLOYMENT:vN, DEPLOYMENT:latest or @ALIAS.")
    ],
    student: Annotated[
        str,
        typer.Option("--student", help="The student's size: layers=K (fewer than the teacher's)."),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field of the teacher's recipe, as for `conveyor train` "
            "(e.g. training.max_steps=200, compress.distil.temperature=4).",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint of this run.")
    ] = False,
    against: Annotated[
        str,
        typer.Option(
            "--against", help="Champion after the parity gate: an alias, a version or 'none'."
        ),
    ] = "production",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the parity and gate reports.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Distil a smaller student of the same family from a trained version: every other layer
    of the teacher to start with, then the teacher's temperature-softened logits (KL) plus the
    hard labels (a language model's assistant tokens only), on the same DeepSpeed engine as
    `conveyor train` (checkpoints, `--resume`, progress). The student is a new version, judged
    against its teacher within `compress.distil.max_headline_drop`, then the champion. Prints
    the new VERSION last.

    Exit 0 when it passed, 1 when a gate said no (the student stays registered, rejected,
    with the numbers; nothing moves), 2 for a student that cannot be made (as large as its
    teacher, another vocabulary), 7 when training could not go on.
    """
    import training
    from flows.compress import distil_and_judge
    from gates import footprint

    layers = training.parse_student(student)
    logging.getLogger("training").setLevel(logging.INFO)
    outcome = distil_and_judge(
        _context.registry(),
        _context.settings(),
        version,
        layers=layers,
        overrides=overrides or [],
        resume=resume,
        against=against,
        out_dir=out,
    )
    parity = outcome.parity
    speed = footprint(parity.candidate.metrics, parity.champion.metrics if parity.champion else {})
    if as_json:
        summary = {
            "version": outcome.version,
            "teacher": outcome.parent,
            "layers": layers,
            "passed": outcome.passed,
            "reason": outcome.reason,
            "footprint": speed,
            "parity_report": str(parity.report_path),
        }
        typer.echo(json.dumps(summary, indent=2))
    else:
        verdict = "passed" if outcome.passed else "refused"
        typer.echo(f"{outcome.version}: {layers}-layer student of {outcome.parent}, {verdict}")
        typer.echo(f"  {outcome.reason}")
        if speed:
            typer.echo(f"  against {outcome.parent}: {speed}")
        typer.echo(f"  parity report: {parity.report_path}")
        typer.echo(outcome.version)
    if not outcome.passed:
        raise typer.Exit(ExitCode.SAID_NO)
