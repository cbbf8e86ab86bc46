"""`conveyor status`: production, the newest rollout and every worker, as data and as text.

:func:`deployment_status` returns plain JSON values (strings, numbers, lists, objects; times
as ISO 8601), so ``conveyor status --json`` is readable by any script; :func:`render_status`
is the same view for a person.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.registry import Registry, RolloutRecord, WorkerRecord
from serving.canary.bake import LIVE_SECONDS
from serving.canary.stats import VersionStats

__all__ = ["deployment_status", "render_status"]


def _plain(value: Any) -> Any:
    """A JSON value: enums by value, times in ISO 8601, infinities as null."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _figures(stats: VersionStats) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": round(stats.error_rate, 6),
        "p50_ms": stats.percentile_ms(50),
        "p99_ms": stats.percentile_ms(99),
    }


def _worker(record: WorkerRecord, now: datetime) -> dict[str, Any]:
    age = (now - record.updated_at).total_seconds()
    figures = {v: VersionStats.from_dict(s) for v, s in record.stats.items()}
    return {
        "worker": record.worker,
        "live": age <= LIVE_SECONDS,
        "seconds_since_heartbeat": round(age, 1),
        "active": record.active_version,
        "standby": record.standby_version,
        "canary": record.canary_version,
        "prewarmed": record.prewarmed_version,
        "since": record.started_at,
        "failures": record.failures,
        "figures": {v: _figures(s) for v, s in figures.items()},
    }


def _rollout(record: RolloutRecord) -> dict[str, Any]:
    return asdict(record)


def deployment_status(registry: Registry, deployment: str, now: datetime) -> dict[str, Any]:
    """What serves ``deployment``; NotFoundError when the registry has never heard of it."""
    if not registry.list_versions(deployment, limit=1):
        known = sorted({v.deployment for v in registry.list_versions()})
        listed = ", ".join(known) if known else "none yet"
        raise NotFoundError(f"no deployment {deployment!r} in the registry (deployments: {listed})")
    rollouts = registry.rollouts(deployment, limit=1)
    view = {
        "deployment": deployment,
        "production": registry.alias(deployment, "production"),
        "rollout": _rollout(rollouts[0]) if rollouts else None,
        "workers": [_worker(w, now) for w in registry.workers(deployment)],
    }
    plain: dict[str, Any] = _plain(view)
    return plain


def _worker_line(worker: dict[str, Any]) -> str:
    state = "live" if worker["live"] else f"silent {worker['seconds_since_heartbeat']:.0f} s"
    shown = ", ".join(
        f"{version} {f['requests']} req {f['error_rate']:.1%} err "
        f"p99<={'inf' if f['p99_ms'] is None else format(f['p99_ms'], 'g')}ms"
        for version, f in worker["figures"].items()
    )
    refused = f"; refused {worker['failures']}" if worker["failures"] else ""
    warming = f" prewarmed {worker['prewarmed']}" if worker.get("prewarmed") else ""
    return (
        f"  worker {worker['worker']} {state}: active {worker['active'] or '-'} "
        f"standby {worker['standby'] or '-'} canary {worker['canary'] or '-'}{warming}; "
        f"{shown or 'no requests'}{refused}"
    )


def render_status(view: dict[str, Any]) -> str:
    """The view of :func:`deployment_status` as lines for a person."""
    lines = [f"{view['deployment']}: production {view['production'] or '-'}"]
    r = view["rollout"]
    if r is not None:
        lines.append(
            f"  rollout {r['id']}: {r['kind']} {r['version']} from {r['previous'] or '-'} "
            f"{r['state']} (canary {r['canary_percent']:g}%, bake {r['bake_seconds']:g} s): "
            f"{r['details'].get('outcome') or r['reason']}"
        )
    lines += [_worker_line(w) for w in view["workers"]]
    if not any(w["live"] for w in view["workers"]):
        lines.append("  no live worker: nothing is serving requests (start one: conveyor serve)")
    return "\n".join(lines)
