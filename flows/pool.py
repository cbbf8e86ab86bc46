"""Register the retrain deployments to a work pool: its workers run them, not this process.

``prefect worker start --pool NAME`` processes poll the pool. Each flow run starts in the
checkout ``source`` (the process worker's ``working_dir`` and a ``set_working_directory``
pull step), so a worker runs the code of the checkout that registered it. Flow runs send
heartbeats; an automation marks a run whose heartbeats stopped (its worker or its machine
died) as Crashed, which also frees its deployment's concurrency slot for the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

from flows.deployments import DeploymentSpec, build_deployments

__all__ = [
    "CRASH_AUTOMATION",
    "DEFAULT_HEARTBEAT_SECONDS",
    "ENTRYPOINT",
    "crash_automation_name",
    "ensure_crash_detection",
    "heartbeat_tag",
    "register_to_pool",
    "silent_after",
]

ENTRYPOINT = "flows/retrain.py:retrain"
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
DEFAULT_HEARTBEAT_SECONDS = 30  # the smallest Prefect allows (its default: 180 s)
CRASH_AUTOMATION = "conveyor: crash flow runs whose heartbeats stopped"


def heartbeat_tag(heartbeat_seconds: int) -> str:
    """The tag of runs that beat every ``heartbeat_seconds``: the automation judges only them
    (a run beating at Prefect's default 180 s must not be crashed after 75 s)."""
    return f"conveyor-heartbeat-{heartbeat_seconds}s"


def crash_automation_name(heartbeat_seconds: int) -> str:
    return f"{CRASH_AUTOMATION} ({heartbeat_seconds} s beats)"


def silent_after(heartbeat_seconds: int) -> int:
    """Seconds without a heartbeat before a run counts as dead: two missed beats and a margin
    (a busy machine delays a beat; a live run wrongly marked Crashed would be worse)."""
    return 2 * heartbeat_seconds + 15


def _job_variables(spec: DeploymentSpec, source: Path, heartbeat_seconds: int) -> dict[str, Any]:
    variables = dict(spec.job_variables)
    env = {**variables.get("env", {}), HEARTBEAT_ENV: str(heartbeat_seconds)}
    return {**variables, "working_dir": str(source), "env": env}


def register_to_pool(
    specs: Sequence[DeploymentSpec],
    pool: str,
    source: Path,
    *,
    with_schedules: bool = True,
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
) -> dict[str, UUID]:
    """Create or update each deployment in ``pool`` (its triggers too); ids by name."""
    from prefect import Flow

    root = source.resolve()
    flow = Flow.from_source(source=str(root), entrypoint=ENTRYPOINT)
    variables = {spec.name: _job_variables(spec, root, heartbeat_seconds) for spec in specs}
    tagged = [replace(spec, tags=[*spec.tags, heartbeat_tag(heartbeat_seconds)]) for spec in specs]
    built = build_deployments(
        tagged, with_schedules=with_schedules, flow=flow, job_variables=variables
    )
    ids = {deployment.name: deployment.apply(work_pool_name=pool) for deployment in built}
    ensure_crash_detection(heartbeat_seconds)
    return ids


def ensure_crash_detection(heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS) -> UUID:
    """The automation that crashes silent flow runs (Prefect's documented zombie detection),
    for the runs tagged as beating every ``heartbeat_seconds``; created once, found by name."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    silent = silent_after(heartbeat_seconds)
    name = crash_automation_name(heartbeat_seconds)
    tag = heartbeat_tag(heartbeat_seconds)
    automation = AutomationCore(
        name=name,
        description=f"A flow run with no heartbeat for {silent} s lost its worker: Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silent),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                name=None,
                message=f"no heartbeat for {silent} s: its worker or machine stopped",
                force=False,
            )
        ],
    )
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(name)
        if found:
            return found[0].id
        return client.create_automation(automation)
