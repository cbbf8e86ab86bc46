"""`conveyor convert VERSION --to gguf`: a llama.cpp version, judged for parity, printed last."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli import _context
from conveyor.errors import ExitCode

__all__ = ["convert"]


class Target(StrEnum):
    GGUF = "gguf"


class Quant(StrEnum):
    F16 = "f16"
    Q8_0 = "q8_0"
    Q4_0 = "q4_0"


def convert(
    version: Annotated[
        str, typer.Argument(help="DEPLOYMENT:vN, DEPLOYMENT:latest or DEPLOYMENT@ALIAS.")
    ],
    to: Annotated[Target, typer.Option("--to", help="The serving format.")] = Target.GGUF,
    quant: Annotated[
        Quant, typer.Option("--quant", help="How the GGUF stores its matrices.")
    ] = Quant.Q8_0,
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
    """Write a causal-LM version as GGUF for llama.cpp (a LoRA adapter merged into its base)
    as a new version, then judge it: parity with the version it came from (the recipe's
    `convert` tolerances), then the champion. Prints the new VERSION last.

    Exit 0 when it passed, 1 when the parity gate or the champion gate said no (the version
    stays registered, rejected, with the numbers), 2 for a version that cannot convert.
    """
    from flows.convert import convert_and_judge

    outcome = convert_and_judge(
        _context.registry(),
        _context.settings(),
        version,
        quant=str(quant),
        against=against,
        out_dir=out,
    )
    parity = outcome.parity
    summary = {
        "version": outcome.version,
        "parent": outcome.parent,
        "to": str(to),
        "quant": str(quant),
        "passed": outcome.passed,
        "reason": outcome.reason,
        "parity_report": str(parity.report_path),
        "champion_report": str(outcome.champion.report_path) if outcome.champion else None,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        verdict = "passed" if outcome.passed else "refused"
        typer.echo(f"{outcome.version}: GGUF {quant} of {outcome.parent}, {verdict}")
        typer.echo(f"  {outcome.reason}")
        typer.echo(f"  parity report: {parity.report_path}")
        typer.echo(outcome.version)
    if not outcome.passed:
        raise typer.Exit(ExitCode.SAID_NO)
