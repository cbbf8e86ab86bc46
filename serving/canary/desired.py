"""What a worker should serve, from the registry's production alias and newest rollout (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.registry import RolloutRecord, RolloutState

__all__ = ["Desired", "desired_state"]


@dataclass(frozen=True)
class Desired:
    """``active`` takes the traffic; ``canary`` takes ``canary_percent`` of it while baking."""

    active: str | None
    canary: str | None = None
    canary_percent: float = 0.0
    rollout_id: int | None = None


def desired_state(production: str | None, rollout: RolloutRecord | None) -> Desired:
    """While a canary bakes, production already names the candidate; the previous version
    keeps the rest of the traffic. Otherwise production takes it all."""
    rollout_id = rollout.id if rollout else None
    if (
        rollout is not None
        and rollout.state == RolloutState.BAKING
        and rollout.version == production
        and rollout.previous is not None
    ):
        return Desired(rollout.previous, production, rollout.canary_percent, rollout_id)
    return Desired(production, None, 0.0, rollout_id)
