"""Names of the Prefect events conveyor emits and its deployments' triggers match.

Kept in the core so the stage that emits (serving's monitor, the folder watch) and the
flows that listen share them without importing one another.
"""

from __future__ import annotations

__all__ = ["DATA_LANDED", "DRIFT_DETECTED", "resource_id"]

DATA_LANDED = "conveyor.data.landed"
DRIFT_DETECTED = "conveyor.drift.detected"


def resource_id(deployment: str) -> str:
    """The Prefect event resource a deployment's triggers match."""
    return f"conveyor.deployment.{deployment}"
