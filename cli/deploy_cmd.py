"""`conveyor deploy` and `conveyor watch`: retrain on a schedule, from the UI, on events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import _context

__all__ = ["deploy", "watch"]


def deploy(
    names: Annotated[
        list[str] | None, typer.Argument(help="Deployments to serve (default: all in the file).")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Deployments file.")] = None,
    prefect_port: Annotated[
        int, typer.Option("--prefect-port", help="Local Prefect server port.")
    ] = 4200,
    no_schedules: Annotated[
        bool, typer.Option("--no-schedules", help="Register without the cron schedules.")
    ] = False,
    apply_only: Annotated[
        bool,
        typer.Option("--apply-only", help="Register them and exit (a worker or runner runs them)."),
    ] = False,
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool",
            help="Register them to this work pool and exit (`prefect worker start` runs them).",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="With --pool: the checkout workers run (default: this one)."),
    ] = None,
) -> None:
    """Serve the retrain deployments of infra/prefect.yaml: schedules, UI runs, triggers.

    Starts (or reuses) the local Prefect server, registers every deployment with its
    schedule, parameters, concurrency limit and event triggers, then runs their flow
    runs in this process until interrupted. With --pool, that work pool's workers run
    them (`prefect worker start --pool NAME`), from the checkout --source.
    """
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import DEPLOYMENTS_FILE, build_deployments, load_specs
    from flows.server import ensure_prefect_server

    specs = load_specs(file or DEPLOYMENTS_FILE, names or [])
    server = ensure_prefect_server(_context.settings(), prefect_port)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        if pool:
            from flows.pool import register_to_pool
            from serving.control.server import REPO_ROOT

            ids = register_to_pool(
                specs, pool, source or REPO_ROOT, with_schedules=not no_schedules
            )
            for name, deployment_id in ids.items():
                typer.echo(f"registered {name} to work pool {pool}: {deployment_id}")
            return
        deployments = build_deployments(specs, with_schedules=not no_schedules)
        if apply_only:
            for deployment in deployments:
                typer.echo(f"registered {deployment.name}: {deployment.apply()}")
            return
        typer.echo(f"Prefect UI: {server.url}/deployments", err=True)
        serve(*deployments)


def watch(
    folder: Annotated[Path, typer.Argument(help="Folder where new training files land.")],
    deployment: Annotated[
        str, typer.Option("--deployment", help="Deployment to retrain on new data.")
    ],
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls.")
    ] = 5.0,
    existing: Annotated[
        bool, typer.Option("--existing", help="Also announce the files already there.")
    ] = False,
    prefect_port: Annotated[
        int, typer.Option("--prefect-port", help="Local Prefect server port.")
    ] = 4200,
) -> None:
    """Emit conveyor.data.landed for each new data file; the deployment's trigger retrains."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from conveyor.errors import ConveyorError
    from flows.server import ensure_prefect_server
    from flows.watch import emit_data_landed, watch_folder

    if not folder.is_dir():
        raise ConveyorError(f"{folder} is not a folder")
    server = ensure_prefect_server(_context.settings(), prefect_port)

    def announce(name: str, path: Path) -> None:
        emit_data_landed(name, path)
        typer.echo(f"landed: {path} -> retrain {name}")

    typer.echo(f"watching {folder} for {deployment} (Ctrl-C to stop)", err=True)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        watch_folder(folder, deployment, interval=interval, existing=existing, announce=announce)
