"""`conveyor package | serve | promote | rollback | status`: thin wiring to :mod:`serving`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from cli import _context
from cli._render import json_text
from conveyor.errors import ExitCode

__all__ = ["package", "promote", "rollback", "serve", "status"]

Version = Annotated[
    str, typer.Argument(help="DEPLOYMENT:vN, DEPLOYMENT:latest or DEPLOYMENT@ALIAS.")
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every worker.")]


def package(
    version: Version,
    no_bento: Annotated[bool, typer.Option("--no-bento", help="Only the model store.")] = False,
) -> None:
    """Put a version into the BentoML model store (safetensors only) and build its Bento."""
    from serving.control.packaging import package_version

    done = package_version(_context.registry(), version, build_bento=not no_bento)
    typer.echo(f"model: {done.model_tag} ({len(done.files)} files)")
    if done.bento_tag:
        typer.echo(f"bento: {done.bento_tag}  (bentoml containerize {done.bento_tag})")


def serve(
    deployment: Annotated[
        str | None, typer.Argument(help="The deployment whose production alias to follow.")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 3000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="BentoML worker processes.")] = 1,
    deployments: Annotated[
        str | None,
        typer.Option("--deployments", help="Several deployments on one base: A,B,C."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Every deployment whose production is an adapter on NAME."),
    ] = None,
    max_loaded_adapters: Annotated[
        int | None,
        typer.Option("--max-loaded-adapters", min=1, help="Adapters kept loaded per worker."),
    ] = None,
    adapter_memory_mb: Annotated[
        float | None,
        typer.Option("--adapter-memory-mb", min=0.001, help="Adapter weights kept, per worker."),
    ] = None,
) -> None:
    """Run `bentoml serve` on 127.0.0.1; every worker follows DEPLOYMENT@production (or each
    of several deployments on one base; a request's `model` picks one)."""
    from serving.control.many import check_many, served_names
    from serving.control.server import die_with_parent, serve_command, serve_environment
    from serving.worker.runtime import adapter_budget

    settings = _context.settings()
    bounds = {"max_loaded_adapters": max_loaded_adapters, "adapter_memory_mb": adapter_memory_mb}
    settings = settings.model_copy(update={k: v for k, v in bounds.items() if v is not None})
    names = [deployment] if deployment and not (deployments or base) else []
    budget = adapter_budget(settings)
    if not names or budget.budget_bytes is not None:  # one deployment: as it always started
        registry = _context.registry()
        names = served_names(registry, deployment, deployments, base)
        check_many(registry, names, budget)
    host = settings.serve_host
    env = serve_environment(settings, ",".join(names), workers, url=f"http://{host}:{port}")
    child = subprocess.Popen(
        serve_command(port, host), env=env, start_new_session=True, preexec_fn=die_with_parent()
    )
    keys = "API keys required" if settings.auth_required else "no API key required"
    typer.echo(
        f"serving {', '.join(names)} on http://{host}:{port} ({workers} workers, {keys})",
        err=True,
    )
    try:
        sys.exit(child.wait())
    except KeyboardInterrupt:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
        sys.exit(ExitCode.INTERRUPTED)


def _report(outcome: Any) -> None:
    rollout = outcome.rollout
    timing = f"verified in {outcome.load_seconds:.2f} s"
    if outcome.workers:
        timing += f", converged in {outcome.converge_seconds:.2f} s"
    typer.echo(f"{rollout.kind} {rollout.version}: {rollout.state} ({timing})")
    if outcome.workers:
        typer.echo(f"workers serving it: {', '.join(outcome.workers)}")
    for note in outcome.notes:
        typer.echo(note)


def promote(
    version: Version,
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary", min=0, max=100, help="Percent to the candidate (recipe default; 0: none)."
        ),
    ] = None,
    bake: Annotated[
        float | None, typer.Option("--bake", min=0, help="Bake window in seconds.")
    ] = None,
    timeout: Timeout = 60.0,
) -> None:
    """Verify VERSION loads and answers its smoke set, move production, wait for every worker.

    Exit 0 when all workers serve it, 1 when the canary was rolled back, 5 when refused,
    6 when some workers did not converge (named), 4 when it already serves.
    """
    from serving.control.rollout import promote as run

    outcome = run(
        _context.registry(), version, canary_percent=canary, bake_seconds=bake, timeout=timeout
    )
    _report(outcome)
    if outcome.rolled_back:
        raise typer.Exit(ExitCode.SAID_NO)


def rollback(
    deployment: Annotated[str, typer.Argument(help="The deployment to roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="A version (default: the last that served).")
    ] = None,
    timeout: Timeout = 60.0,
) -> None:
    """Return to the last version that really served (from history), verified to load first."""
    from serving.control.rollout import rollback as run

    _report(run(_context.registry(), deployment, to, timeout=timeout))


def status(
    deployment: Annotated[str | None, typer.Argument(help="One deployment (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What serves where: production, the newest rollout, each worker's versions and figures.

    Exit 3 when DEPLOYMENT is not in the registry.
    """
    from serving.control.status import deployment_status, render_status

    registry = _context.registry()
    names = [deployment] if deployment else sorted({v.deployment for v in registry.list_versions()})
    views = [deployment_status(registry, name, datetime.now(UTC)) for name in names]
    if as_json:
        typer.echo(json_text(views))
        return
    if not views:
        typer.echo("no deployments in the registry yet (conveyor train RECIPE registers one)")
    for view in views:
        typer.echo(render_status(view))
