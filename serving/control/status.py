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
from serving.control.wording import clock, endpoints, how_moved, made_by, serving_now

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
        "url": record.url,
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
    production = registry.alias(deployment, "production")
    workers = [_worker(w, now) for w in registry.workers(deployment)]
    serving = [w for w in workers if w["live"] and production and w["active"] == production]
    view = {
        "deployment": deployment,
        "production": production,
        "served_by": [w["worker"] for w in serving],  # now, from fresh heartbeats
        "endpoints": endpoints([w["url"] for w in serving]),
        "made_by": registry.resolve(production).lineage if production else None,
        "rollout": _rollout(rollouts[0]) if rollouts else None,
        "workers": workers,
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


def _rollout_line(r: dict[str, Any]) -> str:
    """The newest rollout, with the moment its record was written: what it says of the
    workers was true then (the "now:" line says what is true now)."""
    how = how_moved(r["kind"], r["previous"], r["canary_percent"], r["bake_seconds"])
    said = r["details"].get("outcome") or r["reason"]
    at = clock(r["finished_at"] or r["started_at"])
    return (
        f"  rollout {r['id']}: {r['kind']} {r['version']} from {r['previous'] or '-'}, {how}; "
        f"{r['state']}, recorded {at}: {said}"
    )


def render_status(view: dict[str, Any]) -> str:
    """The view of :func:`deployment_status` as lines for a person."""
    lines = [f"{view['deployment']}: production {view['production'] or '-'}"]
    live = sum(1 for w in view["workers"] if w["live"])
    now = serving_now(view["production"], live, view["served_by"], view["endpoints"])
    lines.append(f"  now: {now}")
    if view["production"]:
        lines.append(f"  {view['production']} made by: {made_by(view['made_by'])}")
    if view["rollout"] is not None:
        lines.append(_rollout_line(view["rollout"]))
    lines += [_worker_line(w) for w in view["workers"]]
    return "\n".join(lines)
