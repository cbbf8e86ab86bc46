"""`conveyor status`: production, the newest rollout and every worker, as data and as text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.registry import Registry
from serving.bake import LIVE_SECONDS
from serving.stats import VersionStats

__all__ = ["deployment_status"]


def deployment_status(registry: Registry, deployment: str, now: datetime) -> dict[str, Any]:
    production = registry.alias(deployment, "production")
    rollouts = registry.rollouts(deployment, limit=1)
    workers = []
    lines = [f"{deployment}: production {production or '-'}"]
    if rollouts:
        r = rollouts[0]
        lines.append(
            f"  rollout {r.id}: {r.kind} {r.version} from {r.previous or '-'} {r.state}"
            f" (canary {r.canary_percent:g}%, bake {r.bake_seconds:g} s) {r.reason}"
        )
    for w in registry.workers(deployment):
        age = (now - w.updated_at).total_seconds()
        live = age <= LIVE_SECONDS
        figures = {v: VersionStats.from_dict(s) for v, s in w.stats.items()}
        shown = ", ".join(
            f"{v} {s.requests} req {s.error_rate:.1%} err p99<={s.percentile_ms(99):g}ms"
            for v, s in figures.items()
        )
        lines.append(
            f"  worker {w.worker} {'live' if live else f'silent {age:.0f} s'}: "
            f"active {w.active_version} standby {w.standby_version or '-'}"
            f" canary {w.canary_version or '-'}; {shown or 'no requests'}"
            + (f"; refused {w.failures}" if w.failures else "")
        )
        workers.append({"worker": w.worker, "live": live, "active": w.active_version,
                        "standby": w.standby_version, "canary": w.canary_version,
                        "since": w.started_at, "failures": w.failures,
                        "figures": {v: s.as_dict() for v, s in figures.items()}})  # fmt: skip
    rollout = rollouts[0].__repr__() if rollouts else None
    return {
        "deployment": deployment,
        "production": production,
        "rollout": rollout,
        "workers": workers,
        "text": "\n".join(lines),
    }
