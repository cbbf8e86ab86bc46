"""`conveyor models ...`: what the registry holds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from cli import _context
from cli._render import (
    derived_versions,
    format_table,
    json_text,
    render_audit,
    render_derived,
    render_history,
    render_version,
    when,
)

__all__ = ["models_app"]

models_app = typer.Typer(
    help="Versions, aliases and history in the registry.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@models_app.command("list")
def list_versions(
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List versions, newest first per deployment."""
    registry = _context.registry()
    records = registry.list_versions(deployment, limit=limit)
    if as_json:
        typer.echo(json_text([asdict(r) for r in records]))
        return
    if not records:
        typer.echo("no versions yet" + (f" for {deployment}" if deployment else ""))
        return
    aliases = {d: registry.aliases(d) for d in {r.deployment for r in records}}
    rows = []
    for record in records:
        held = [a for a, v in aliases[record.deployment].items() if v == record.version]
        rows.append(
            (
                record.version,
                record.status,
                ",".join(sorted(held)) or "-",
                when(record.created_at),
                record.created_by,
            )
        )
    typer.echo(format_table(("version", "status", "aliases", "created", "by"), rows))


@models_app.command("show")
def show(
    version: Annotated[
        str, typer.Argument(help="DEPLOYMENT:vN, DEPLOYMENT:latest or DEPLOYMENT@ALIAS.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Everything about one version: lineage, metrics, gate verdict, and the versions made
    from it (int8, GGUF, distilled students) with their verdicts, speed and size."""
    registry = _context.registry()
    record = registry.resolve(version)
    children = derived_versions(record, registry.list_versions(record.deployment))
    if as_json:
        payload = asdict(record) | {"compressed_children": [asdict(c) for c in children]}
        typer.echo(json_text(payload))
        return
    lines = [render_version(record, registry.aliases(record.deployment)), *render_derived(children)]
    typer.echo("\n".join(lines))


@models_app.command("history")
def history(
    deployment: Annotated[str, typer.Argument(help="The deployment (recipe name).")],
    audit: Annotated[bool, typer.Option("--audit", help="Also print the audit log.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Every alias move of a deployment (promotions, rollbacks), oldest first."""
    registry = _context.registry()
    moves = registry.alias_history(deployment)
    entries = registry.audit_log(deployment) if audit else []
    if as_json:
        payload = {"aliases": [asdict(m) for m in moves], "audit": [asdict(e) for e in entries]}
        typer.echo(json_text(payload))
        return
    if not moves and not registry.list_versions(deployment, limit=1):
        typer.echo(f"no versions or alias moves for {deployment}")
        return
    typer.echo(render_history(moves) if moves else f"no alias moves for {deployment} yet")
    if audit:
        typer.echo("")
        typer.echo(render_audit(list(reversed(entries))))
