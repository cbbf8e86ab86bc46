"""What the flows say in the run log and the promotion artifact: sentences, not Python values.

A log line never shows a dict or Markdown (``**completed**``); the promotion artifact says
when it was written, how the version moved (a straight move is not a "canary 100%"), who
served it then and where clients reach it. Pure functions of plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.markdown import figure

__all__ = [
    "Promotion",
    "log_line",
    "metrics_text",
    "outcome_text",
    "promotion_lines",
    "run_lineage",
]


def metrics_text(metrics: Mapping[str, Any]) -> str:
    """``validation_accuracy 0.9413, train_steps 400``: scalars only, counts as integers."""
    shown = []
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        count = isinstance(value, float) and value.is_integer() and abs(value) >= 1
        shown.append(f"{name} {figure(int(value) if count else value)}")
    return ", ".join(shown) or "none"


def outcome_text(outcome: Mapping[str, Any]) -> str:
    """The retrain's outcome as one sentence."""
    version, deployment = outcome["version"], outcome["deployment"]
    if outcome.get("promoted"):
        head = f"{version} promoted: production of {deployment} is {version}"
    elif outcome.get("passed"):
        head = f"{version} passed its gates, not promoted"
    else:
        head = f"{version} not promoted"
    champion = outcome.get("champion")
    against = f" (champion was {champion})" if champion else " (no champion before)"
    return f"{head}{against}: {outcome['reason']}"


@dataclass(frozen=True)
class Promotion:
    """What a promotion did, as the artifact tells it (plain values)."""

    deployment: str
    version: str
    previous: str | None
    production: str | None
    rolled_back: bool
    how: str  # serving.control.wording.how_moved
    state: str
    written: str  # the moment, serving.control.wording.clock
    workers: Sequence[str]
    endpoints: Sequence[str]
    load_seconds: float
    converge_seconds: float
    notes: Sequence[str] = ()


def promotion_lines(p: Promotion) -> list[str]:
    """Markdown for the artifact: a heading and bullets of plain sentences, so the same lines
    without their markers are the log line."""
    if p.workers:
        served = f"served by {len(p.workers)} live worker(s): {', '.join(p.workers)}"
    else:
        served = "no live worker served it yet; servers load it when they start"
    if p.endpoints:
        endpoint = f"endpoint: {', '.join(p.endpoints)} (Swagger UI at its root)"
    else:
        endpoint = f"endpoint: none running yet (conveyor serve {p.deployment} starts one)"
    return [
        f"## {'Rolled back' if p.rolled_back else 'Promoted'}: {p.version}",
        "",
        f"- production: {p.previous or '(none)'} -> {p.production or '(none)'}",
        f"- rollout: {p.how}; {p.state}",
        f"- when this was written ({p.written}): {served}",
        f"- {endpoint}",
        f"- what serves now: conveyor status {p.deployment}",
        f"- verified to load in {p.load_seconds:.2f} s; converged in {p.converge_seconds:.2f} s",
        *[f"- {note}" for note in p.notes],
    ]


def log_line(lines: Sequence[str]) -> str:
    """The artifact's lines as one log line: no heading or bullet markers."""
    return "; ".join(line.lstrip("#- ") for line in lines if line)


def run_lineage(run_id: str | None, url: str | None) -> dict[str, str]:
    """The flow run that made a version, for its lineage (empty outside a flow run). Its name
    is left out: the flow renames the run once it knows the outcome."""
    if not run_id:
        return {}
    found = {"flow_run_id": run_id}
    if url and not url.startswith("None"):  # no UI URL configured: the id alone
        found["flow_run_url"] = url
    return found
