"""`conveyor k8s render`: thin wiring to :mod:`serving.control.k8s`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import _context

__all__ = ["k8s_app"]

k8s_app = typer.Typer(
    help="Kubernetes: a deployment's manifests, autoscaled on its own metrics.",
    no_args_is_help=True,
)


@k8s_app.command("render")
def render(
    deployment: Annotated[str, typer.Argument(help="The deployment to run on Kubernetes.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder of the overlay (default: k8s/DEPLOYMENT)."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="The version whose image to run (default: production)."),
    ] = None,
    image_repository: Annotated[
        str,
        typer.Option("--image-repository", help="Where `bentoml containerize` images are pushed."),
    ] = "registry.example.com/conveyor",
    namespace: Annotated[str, typer.Option("--namespace", help="Kubernetes namespace.")] = (
        "conveyor"
    ),
    prometheus: Annotated[
        str, typer.Option("--prometheus", help="The Prometheus KEDA queries.")
    ] = "http://prometheus:9090",
    no_keda: Annotated[
        bool,
        typer.Option("--no-keda", help="No KEDA in the cluster: an HPA on CPU instead."),
    ] = False,
) -> None:
    """Write a kustomize overlay (Deployment, Service, PodDisruptionBudget, and a KEDA
    ScaledObject or a CPU HPA) for DEPLOYMENT from the registry and its recipe's
    `serving.autoscale`; apply it with `kubectl apply -k DIR`."""
    from serving.control.k8s import overlay_files, overlay_for_version, write_overlay

    record = _context.registry().resolve(version or f"{deployment}@production")
    overlay = overlay_for_version(
        record, image_repository, namespace=namespace, prometheus=prometheus, keda=not no_keda
    )
    folder = out if out is not None else Path("k8s") / record.deployment
    for path in write_overlay(overlay_files(overlay), folder):
        typer.echo(str(path))
    typer.echo(f"{record.version}: kubectl apply -k {folder}", err=True)
