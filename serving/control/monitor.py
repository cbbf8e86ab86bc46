"""The drift monitor: live traffic of a version against the data it was trained on.

Workers publish an input/prediction profile per version with their heartbeat
(:mod:`serving.worker.profile`); :func:`recent_profile` sums the live ones, :func:`check_drift`
compares the sum with the version's training profile (PSI of predicted labels vs training
labels and of text lengths, unknown-token rate, mean confidence), and :func:`report_drift`
emits the Prefect event the retrain deployment is triggered by and writes the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.registry import Registry, VersionRecord
from conveyor.serving_spec import serving_spec_of
from data_checks.drift import compare_profiles
from data_checks.reference import profile_of_version
from serving.canary.bake import live_workers
from serving.control.capture_profile import capture_profile
from serving.worker.profile import PROFILE_STATS_KEY, InputProfile, merge_profiles

if TYPE_CHECKING:
    from prefect.events import Event

__all__ = [
    "DriftReport",
    "Figure",
    "MonitorThresholds",
    "check_drift",
    "monitor_version",
    "recent_profile",
    "reference_for",
    "report_drift",
    "thresholds_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorThresholds:
    """Plain values of a version's monitor thresholds (its recipe's ``serving.monitor``)."""

    min_requests: int = 200
    max_label_psi: float = 0.2
    max_length_psi: float = 0.2
    max_unknown_token_rate: float = 0.05
    min_mean_confidence: float = 0.4


@dataclass(frozen=True)
class Figure:
    """One compared figure: its value, its limit, and whether the limit is a floor."""

    name: str
    value: float | None
    limit: float
    floor: bool = False

    @property
    def breached(self) -> bool:
        if self.value is None:
            return False
        return self.value < self.limit if self.floor else self.value > self.limit


@dataclass(frozen=True)
class DriftReport:
    """The comparison; ``drifted`` only once ``requests`` reached ``min_requests``."""

    requests: int
    min_requests: int
    figures: tuple[Figure, ...]
    largest_shifts: list[dict[str, Any]] = field(default_factory=list)
    source: str = "heartbeats"  # whose texts: the workers' profiles, or "capture"

    @property
    def judged(self) -> bool:
        return self.requests >= self.min_requests

    @property
    def drifted(self) -> bool:
        return self.judged and any(f.breached for f in self.figures)

    def reason(self) -> str:
        if not self.judged:
            return f"not judged: {self.requests} of {self.min_requests} requests"
        breached = [f for f in self.figures if f.breached]
        if not breached:
            return f"no drift over {self.requests} requests"
        return "; ".join(
            f"{f.name} {f.value:.4g} {'<' if f.floor else '>'} {f.limit:g}" for f in breached
        )

    def as_payload(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "source": self.source,
            "min_requests": self.min_requests,
            "figures": {f.name: f.value for f in self.figures},
            "limits": {f.name: f.limit for f in self.figures},
            "breached": [f.name for f in self.figures if f.breached],
            "largest_shifts": self.largest_shifts,
            "reason": self.reason(),
        }


def check_drift(
    reference: Mapping[str, Any], recent: InputProfile, thresholds: MonitorThresholds
) -> DriftReport:
    """Compare live traffic with a :func:`data_checks.data_profile` of the training data."""
    compared = compare_profiles(reference, recent.as_data_profile())
    figures = (
        Figure("label_psi", compared.label_psi, thresholds.max_label_psi),
        Figure("length_psi", compared.length_psi, thresholds.max_length_psi),
        Figure(
            "unknown_token_rate",
            recent.unknown_token_rate if recent.tokens else None,
            thresholds.max_unknown_token_rate,
        ),
        Figure(
            "mean_confidence",
            recent.mean_confidence if recent.scored else None,  # a language model: none
            thresholds.min_mean_confidence,
            floor=True,
        ),
    )
    return DriftReport(recent.texts, thresholds.min_requests, figures, compared.largest_shifts)


def recent_profile(
    registry: Registry, deployment: str, version: str, now: datetime | None = None
) -> InputProfile:
    """The version's profile summed over the deployment's live workers."""
    parts = []
    for worker in live_workers(registry, deployment, now):
        figures = worker.stats.get(version)
        if isinstance(figures, dict) and isinstance(figures.get(PROFILE_STATS_KEY), dict):
            parts.append(figures[PROFILE_STATS_KEY])
    return merge_profiles(parts)


def thresholds_for(record: VersionRecord) -> MonitorThresholds:
    monitor = serving_spec_of(record).monitor
    return MonitorThresholds(
        min_requests=monitor.min_requests,
        max_label_psi=monitor.max_label_psi,
        max_length_psi=monitor.max_length_psi,
        max_unknown_token_rate=monitor.max_unknown_token_rate,
        min_mean_confidence=monitor.min_mean_confidence,
    )


def reference_for(record: VersionRecord) -> dict[str, Any]:
    """The stored training profile, else one built from the recipe's train split."""
    reference = profile_of_version(record)
    if reference is None:
        raise ConveyorError(
            f"{record.version} has no training data profile and its train split cannot be read:"
            " retrain it, or restore the file its recipe names"
        )
    return reference.profile


def _recent(
    registry: Registry, record: VersionRecord, home: Path | None
) -> tuple[InputProfile, str]:
    """The capture's real prompts when the version's capture is on and holds some in the
    window, else the live workers' profiles; and which it was."""
    if home is not None and serving_spec_of(record).capture.enabled:
        try:
            captured = capture_profile(home, record)
        except Exception as exc:  # no tokenizer beside a GGUF, an unreadable file: the workers'
            log.warning("drift of %s from its capture: %s; from the workers", record.version, exc)
        else:
            if captured.texts:
                return captured, "capture"
    return recent_profile(registry, record.deployment, record.version), "heartbeats"


def monitor_version(
    registry: Registry, deployment: str, version: str | None = None, home: Path | None = None
) -> tuple[str, DriftReport]:
    """Check one version (default: production) of a deployment against its training data;
    with the home, on the prompts its capture recorded when its capture is on."""
    version = version or registry.alias(deployment, "production")
    if version is None:
        raise ConveyorError(f"{deployment} has no production version: promote one first")
    record = registry.resolve(version)
    recent, source = _recent(registry, record, home)
    report = check_drift(reference_for(record), recent, thresholds_for(record))
    return record.version, replace(report, source=source)


def report_drift(
    registry: Registry, deployment: str, version: str, report: DriftReport
) -> Event | None:
    """Emit ``conveyor.drift.detected`` for the deployment and audit it; returns the Event.

    The event reaches the Prefect API configured in the caller's settings (the CLI points
    them at the local server); it is flushed before returning. None if Prefect emits nothing.
    """
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from conveyor.events import DRIFT_DETECTED, resource_id

    payload = {"deployment": deployment, "version": version, **report.as_payload()}
    event = emit_event(
        event=DRIFT_DETECTED,
        resource={"prefect.resource.id": resource_id(deployment)},
        payload=payload,
    )
    EventsWorker.drain_all(timeout=10)
    registry.audit(
        "drift.detected",
        deployment=deployment,
        version=version,
        reason=report.reason(),
        details=payload | {"event_id": str(event.id) if event else None},
    )
    log.warning("drift on %s %s: %s", deployment, version, report.reason())
    return event
