"""`conveyor convert VERSION --to gguf|onnx-int8`: a version in a serving format, judged for
parity with the version it came from, printed last."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import _context
from conveyor.errors import ExitCode

__all__ = ["convert"]


class Target(StrEnum):
    GGUF = "gguf"
    ONNX_INT8 = "onnx-int8"


class Quant(StrEnum):
    F16 = "f16"
    Q8_0 = "q8_0"
    Q4_0 = "q4_0"
    INT8 = "int8"
    INT8_PER_CHANNEL = "int8-per-channel"


_QUANTS = {
    Target.GGUF: (Quant.F16, Quant.Q8_0, Quant.Q4_0),
    Target.ONNX_INT8: (Quant.INT8, Quant.INT8_PER_CHANNEL),
}


def _check_quant(to: Target, quant: Quant | None) -> None:
    from conversion import ConversionError

    if quant is not None and quant not in _QUANTS[to]:
        allowed = ", ".join(str(q) for q in _QUANTS[to])
        raise ConversionError(f"--quant {quant} is not a {to} quant: choose one of {allowed}")


def _outcome(version: str, to: Target, quant: Quant | None, against: str, out: Path | None) -> Any:
    from flows.compress import quantize_and_judge
    from flows.convert import convert_and_judge

    registry, settings = _context.registry(), _context.settings()
    if to is Target.ONNX_INT8:
        chosen = str(quant) if quant else None  # the recipe's compress.quantize.quant
        return quantize_and_judge(
            registry, settings, version, quant=chosen, against=against, out_dir=out
        )
    chosen = str(quant or Quant.Q8_0)
    return convert_and_judge(
        registry, settings, version, quant=chosen, against=against, out_dir=out
    )


def convert(
    version: Annotated[
        str, typer.Argument(help="DEPLOYMENT:vN, DEPLOYMENT:latest or DEPLOYMENT@ALIAS.")
    ],
    to: Annotated[
        Target, typer.Option("--to", help="gguf (a causal LM) or onnx-int8 (a classifier).")
    ] = Target.GGUF,
    quant: Annotated[
        Quant | None,
        typer.Option(
            "--quant",
            help="gguf: f16, q8_0 (default), q4_0; onnx-int8: int8 or int8-per-channel "
            "(default: the recipe's compress.quantize.quant).",
        ),
    ] = None,
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
    """Write a version in a serving format as a new version of its deployment, then judge it:
    parity with the version it came from, then the champion. Prints the new VERSION last.

    `--to gguf`: a causal LM for llama.cpp (a LoRA adapter merged into its base), within the
    recipe's `convert` tolerances. `--to onnx-int8`: a classifier as an int8 ONNX graph
    (ONNX Runtime's quantizer), its headline metric and macro-F1 within the recipe's
    `compress.quantize.max_headline_drop`, with the paired bootstrap interval.

    Exit 0 when it passed, 1 when the parity gate or the champion gate said no (the version
    stays registered, rejected, with the numbers; nothing moves), 2 for a version that
    cannot convert.
    """
    from gates import footprint

    _check_quant(to, quant)
    outcome = _outcome(version, to, quant, against, out)
    parity = outcome.parity
    speed = footprint(parity.candidate.metrics, parity.champion.metrics if parity.champion else {})
    summary = {
        "version": outcome.version,
        "parent": outcome.parent,
        "to": str(to),
        "quant": str(quant) if quant else None,
        "passed": outcome.passed,
        "reason": outcome.reason,
        "footprint": speed,
        "parity_report": str(parity.report_path),
        "champion_report": str(outcome.champion.report_path) if outcome.champion else None,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        verdict = "passed" if outcome.passed else "refused"
        typer.echo(f"{outcome.version}: {to} {quant or ''} of {outcome.parent}, {verdict}")
        typer.echo(f"  {outcome.reason}")
        if speed:
            typer.echo(f"  against {outcome.parent}: {speed}")
        typer.echo(f"  parity report: {parity.report_path}")
        typer.echo(outcome.version)
    if not outcome.passed:
        raise typer.Exit(ExitCode.SAID_NO)
