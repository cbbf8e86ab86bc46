"""How a rollout and who serves a version are said to a person, in one place.

A record is written once and read later: what it says about the workers is true when it was
written, so it is shown with that moment, and what serves now is read from the heartbeats.
A straight move is never shown as "canary 100%, bake 0 s". Pure functions of plain values,
shared by ``conveyor status``, ``conveyor promote`` and the retrain flow's promotion artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

__all__ = ["clock", "endpoints", "how_moved", "made_by", "serving_now"]


def clock(moment: datetime | str | None) -> str:
    """``2026-12-05 13:40:02 UTC`` (from a datetime or an ISO 8601 string)."""
    if moment is None:
        return "-"
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def how_moved(
    kind: str, previous: str | None, canary_percent: float, bake_seconds: float, why: str = ""
) -> str:
    """``canary 10% for 60 s``, or ``straight move, no canary (why)`` for a move that had none."""
    if kind == "promote" and bake_seconds > 0 and 0 < canary_percent < 100:
        return f"canary {canary_percent:g}% for {bake_seconds:g} s"
    reason = why or ("nothing served before to compare with" if previous is None else "")
    return "straight move, no canary" + (f" ({reason})" if reason else "")


def endpoints(urls: Sequence[str | None]) -> list[str]:
    """The distinct URLs the workers said clients reach them at, in order."""
    return list(dict.fromkeys(url for url in urls if url))


def serving_now(version: str | None, live: int, serving: Sequence[str], urls: Sequence[str]) -> str:
    """Who serves ``version`` now (from fresh heartbeats), and where."""
    if version is None:
        return "no production version yet"
    if not live:
        return f"no live worker: nothing serves {version} (start one: conveyor serve)"
    if not serving:
        return f"none of the {live} live workers serves {version} yet"
    where = f" at {', '.join(urls)}" if urls else ""
    return f"{version} served by {len(serving)} of {live} live workers{where}"


def made_by(lineage: dict[str, Any] | None) -> str:
    """The flow run that made a version: its UI link, or its id where no UI was known."""
    found = lineage or {}
    run = found.get("flow_run_id")
    if not run:
        return "- (not made by a Prefect flow run)"
    return f"flow run {found.get('flow_run_url') or run}"
