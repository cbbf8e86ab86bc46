"""`conveyor monitor`: live traffic vs the training data; drift emits the retrain event."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from cli import _context
from cli._render import format_table
from conveyor.errors import ExitCode

if TYPE_CHECKING:
    from serving.control.monitor import DriftReport

__all__ = ["monitor"]


def render_report(deployment: str, version: str, report: DriftReport) -> str:
    rows = []
    for figure in report.figures:
        value = "-" if figure.value is None else f"{figure.value:.4f}"
        bound = f"{'>=' if figure.floor else '<='} {figure.limit:g}"
        rows.append((figure.name, value, bound, "DRIFT" if figure.breached else "ok"))
    table = format_table(("figure", "live", "limit", "state"), rows)
    source = "captured prompts" if report.source == "capture" else "live workers' profiles"
    head = f"{deployment} {version}: {report.requests} texts ({source})"
    return f"{head}\n{table}\n{report.reason()}"


def monitor(
    deployment: Annotated[str, typer.Argument(help="The deployment whose traffic to watch.")],
    once: Annotated[bool, typer.Option("--once", help="Check once and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between checks.")
    ] = 60.0,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to check (default: production).")
    ] = None,
    prefect_port: Annotated[
        int, typer.Option("--prefect-port", help="Local Prefect server port.")
    ] = 4200,
) -> None:
    """Compare what the live workers saw with the training data; exit 1 if drift was reported.

    Over a threshold of the recipe's serving.monitor section, emits conveyor.drift.detected
    to the local Prefect server (the retrain deployment's trigger) and writes the audit log.
    Without --once it checks every --interval seconds and reports each new onset of drift.
    """
    from serving.control.monitor import monitor_version

    registry = _context.registry()
    reported = False
    drifting = False
    try:
        while True:
            home = _context.settings().home
            checked, report = monitor_version(registry, deployment, version, home)
            typer.echo(render_report(deployment, checked, report))
            if report.drifted and not drifting:
                _report(deployment, checked, report, prefect_port)
                reported = True
            drifting = report.drifted
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(ExitCode.SAID_NO if reported else ExitCode.OK)


def _report(deployment: str, version: str, report: DriftReport, prefect_port: int) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import ensure_prefect_server
    from serving.control.monitor import report_drift

    server = ensure_prefect_server(_context.settings(), prefect_port)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        event = report_drift(_context.registry(), deployment, version, report)
    typer.echo(f"drift reported: {event.event if event else 'no event'} -> {server.url}/events")
