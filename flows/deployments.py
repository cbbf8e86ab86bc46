"""Deployments of the retrain flow, from ``infra/prefect.yaml`` (the one source of truth).

``conveyor deploy`` serves them from one process on this machine (schedules, UI runs with
parameters, event triggers, one run at a time per deployment); a team runs the same file
with ``prefect deploy`` and a work pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.events import DeploymentEventTrigger

from conveyor.errors import ConveyorError
from conveyor.events import DATA_LANDED, DRIFT_DETECTED, resource_id

__all__ = [
    "DATA_LANDED",
    "DEPLOYMENTS_FILE",
    "DRIFT_DETECTED",
    "DeploymentSpec",
    "build_deployments",
    "load_specs",
    "resource_id",
]

DEPLOYMENTS_FILE = Path(__file__).resolve().parent.parent / "infra" / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    description: str
    tags: list[str]
    parameters: dict[str, Any]
    crons: list[str]
    concurrency: dict[str, Any] | None
    triggers: list[dict[str, Any]]
    job_variables: dict[str, Any] = field(default_factory=dict)


def load_specs(path: Path = DEPLOYMENTS_FILE, names: Sequence[str] = ()) -> list[DeploymentSpec]:
    """The deployments in ``path`` (all, or those named)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConveyorError(f"{path}: cannot read the deployments ({exc})") from exc
    specs = [
        DeploymentSpec(
            name=entry["name"],
            description=entry.get("description", ""),
            tags=list(entry.get("tags", [])),
            parameters=dict(entry.get("parameters", {})),
            crons=[s["cron"] for s in entry.get("schedules", []) if s.get("active", True)],
            concurrency=entry.get("concurrency_limit"),
            triggers=list(entry.get("triggers", [])),
            job_variables=dict((entry.get("work_pool") or {}).get("job_variables") or {}),
        )
        for entry in document.get("deployments", [])
    ]
    if names:
        unknown = sorted(set(names) - {spec.name for spec in specs})
        if unknown:
            known = ", ".join(spec.name for spec in specs)
            raise ConveyorError(f"no deployment {', '.join(unknown)} in {path} (known: {known})")
        specs = [spec for spec in specs if spec.name in names]
    return specs


def _trigger(spec: DeploymentSpec, entry: dict[str, Any]) -> DeploymentEventTrigger:
    fields = {k: v for k, v in entry.items() if k != "type"}
    event = ",".join(fields.get("expect", []))
    return DeploymentEventTrigger(name=f"{spec.name}: {event}", **fields)


def build_deployments(
    specs: Sequence[DeploymentSpec],
    with_schedules: bool = True,
    flow: Any = None,
    job_variables: dict[str, dict[str, Any]] | None = None,
) -> list[Any]:
    """RunnerDeployments of the retrain flow, ready for ``prefect.serve`` or ``.apply()``.

    ``flow``: the retrain flow as loaded from a source (``flows.pool``; default this
    process's); ``job_variables``: per deployment name, for a work pool's workers.
    """
    from flows.retrain import retrain

    built = []
    for spec in specs:
        limit = ConcurrencyLimitConfig(**spec.concurrency) if spec.concurrency else None
        variables = (job_variables or {}).get(spec.name)
        built.append(
            (flow or retrain).to_deployment(
                name=spec.name,
                cron=(spec.crons or None) if with_schedules else None,
                parameters=spec.parameters,
                concurrency_limit=limit,
                triggers=[_trigger(spec, t) for t in spec.triggers],
                description=spec.description,
                tags=spec.tags,
                job_variables=variables,
            )
        )
    return built
