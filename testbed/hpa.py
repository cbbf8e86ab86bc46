"""The HorizontalPodAutoscaler's replica decision as a pure function: what KEDA's HPA runs.

Written from the Kubernetes documentation, "Horizontal Pod Autoscaling"
(https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/), sections:

- *Algorithm details*: ``desiredReplicas = ceil[currentReplicas * (currentMetricValue /
  desiredMetricValue)]``; no scaling while that ratio is within the tolerance of 1.0 (0.1 by
  default); with several metrics, the largest proposal wins. For an ``AverageValue`` target
  (KEDA's Prometheus trigger) the current value is the metric divided by the current replicas.
- *Stabilization window*: scaling down, the highest recommendation over the window; scaling up,
  the lowest (default windows: 300 s down, 0 s up).
- *Scaling policies*: each policy bounds the change over its ``periodSeconds``, counted from
  the replica count at the start of that period; ``selectPolicy`` ``Max`` (default) takes the
  policy allowing the largest change, ``Min`` the smallest, ``Disabled`` none. Defaults: up by
  4 pods or 100% per 15 s, whichever is more; down by 100% per 15 s.
- ``minReplicas`` / ``maxReplicas`` bound the result; the controller runs every 15 s
  (``--horizontal-pod-autoscaler-sync-period``).

Plain values in, plain values out: the controller's memory (past recommendations and scale
events) is passed in and handed back, never kept here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_BEHAVIOR",
    "Behavior",
    "Bounds",
    "Memory",
    "Metric",
    "Policy",
    "Rules",
    "behavior_from_manifest",
    "decide",
    "proposal",
]

TOLERANCE = 0.1
SYNC_PERIOD_S = 15.0


@dataclass(frozen=True)
class Policy:
    kind: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    stabilization_s: float
    policies: tuple[Policy, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


@dataclass(frozen=True)
class Behavior:
    up: Rules
    down: Rules


DEFAULT_BEHAVIOR = Behavior(
    up=Rules(0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15))),
    down=Rules(300, (Policy("Percent", 100, 15),)),
)


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Metric:
    total: float  # summed over the pods (what the ScaledObject's query returns)
    target: float  # per replica (``AverageValue``)


@dataclass(frozen=True)
class Memory:
    """What the controller remembers between runs: (time, recommendation) and
    (time, replicas added (+) or removed (-))."""

    recommendations: tuple[tuple[float, int], ...] = ()
    events: tuple[tuple[float, int], ...] = field(default=())


def behavior_from_manifest(behavior: dict[str, Any]) -> Behavior:
    """An HPA's ``spec.behavior`` (the Kubernetes API's shape) as :class:`Behavior`; a
    direction it leaves out keeps the documented default."""

    def rules(key: str, default: Rules) -> Rules:
        given = behavior.get(key)
        if not given:
            return default
        policies = tuple(
            Policy(p["type"], int(p["value"]), float(p["periodSeconds"]))
            for p in given.get("policies", [])
        )
        return Rules(
            float(given.get("stabilizationWindowSeconds", default.stabilization_s)),
            policies or default.policies,
            given.get("selectPolicy", "Max"),
        )

    return Behavior(
        rules("scaleUp", DEFAULT_BEHAVIOR.up), rules("scaleDown", DEFAULT_BEHAVIOR.down)
    )


def proposal(current: int, metrics: Sequence[Metric], tolerance: float = TOLERANCE) -> int:
    """The replicas the metrics ask for, before stabilization, policies and bounds."""
    if current < 1:
        raise ValueError(f"the HPA does not scale a target at {current} replicas")
    proposals = []
    for metric in metrics:
        ratio = metric.total / (metric.target * current)
        proposals.append(current if abs(ratio - 1.0) <= tolerance else math.ceil(current * ratio))
    return max(proposals)


def _stabilized(now: float, current: int, desired: int, memory: Memory, b: Behavior) -> int:
    up = min([desired] + [r for t, r in memory.recommendations if t > now - b.up.stabilization_s])
    down = max(
        [desired] + [r for t, r in memory.recommendations if t > now - b.down.stabilization_s]
    )
    return min(max(current, up), down)


def _period_start(now: float, current: int, period_s: float, memory: Memory) -> int:
    """The replica count at the start of the period: now's, less what the period changed."""
    changed = sum(change for t, change in memory.events if t > now - period_s)
    return current - changed


def _limit(now: float, current: int, rules: Rules, memory: Memory, up: bool) -> int:
    """The furthest the policies let the count move from ``current`` in this direction."""
    if rules.select == "Disabled" or not rules.policies:
        return current
    limits = []
    for policy in rules.policies:
        start = _period_start(now, current, policy.period_s, memory)
        if policy.kind == "Pods":
            limits.append(start + policy.value if up else start - policy.value)
        elif up:  # rounded up: a small fleet must still be able to grow
            limits.append(math.ceil(start * (1 + policy.value / 100)))
        else:
            limits.append(math.floor(start * (1 - policy.value / 100)))
    most = max(limits) if up else min(limits)  # the largest change
    least = min(limits) if up else max(limits)
    return most if rules.select == "Max" else least


def decide(
    now: float,
    current: int,
    metrics: Sequence[Metric],
    bounds: Bounds,
    behavior: Behavior = DEFAULT_BEHAVIOR,
    memory: Memory = Memory(),
    tolerance: float = TOLERANCE,
) -> tuple[int, Memory]:
    """The replica count the HPA sets at ``now``, and its memory for the next run."""
    desired = proposal(current, metrics, tolerance)
    wanted = _stabilized(now, current, desired, memory, behavior)
    if wanted > current:
        ceiling = max(_limit(now, current, behavior.up, memory, up=True), current)
        wanted = min(wanted, ceiling, bounds.max_replicas)
    elif wanted < current:
        floor = min(_limit(now, current, behavior.down, memory, up=False), current)
        wanted = max(wanted, floor, bounds.min_replicas)
    wanted = min(max(wanted, bounds.min_replicas), bounds.max_replicas)
    keep = max(behavior.up.stabilization_s, behavior.down.stabilization_s)
    periods = [p.period_s for p in (*behavior.up.policies, *behavior.down.policies)] or [0.0]
    recommendations = tuple(
        (t, r) for t, r in (*memory.recommendations, (now, desired)) if t > now - keep
    )
    events = tuple((t, c) for t, c in memory.events if t > now - max(periods))
    if wanted != current:
        events += ((now, wanted - current),)
    return wanted, Memory(recommendations, events)
