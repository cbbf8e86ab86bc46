"""The live controller of one serving worker: follow the registry, load beside, swap atomically.

A background thread polls the registry's production alias and newest rollout. A version
the worker does not have is loaded beside the serving one, warmed and checked on the smoke
set; only then does one assignment under a lock swap the routing table. The version that
served before stays loaded as hot standby, so going back to it is a pointer swap. A version
that fails to load or fails its smoke set never takes traffic; the failure is reported in
the worker's heartbeat, which also carries per-version request figures for the canary judge.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from conveyor.model_folder import ArtifactError
from conveyor.registry import Registry, WorkerRecord
from serving.canary.bake import judge_rollout
from serving.canary.desired import Desired, desired_state
from serving.canary.evidence import APPS_KEY
from serving.canary.routing import routes_to_canary
from serving.canary.stats import VersionStats
from serving.engine.adapters import AdapterPool
from serving.worker.loading import (
    ENGINE_MAX_BATCH,
    Served,
    load_failure,
    load_version,
    release_version,
    retry_delay,
)
from serving.worker.profile import PROFILE_STATS_KEY, InputProfile, RollingProfile
from serving.worker.repeated_failure import RepeatedFailure

__all__ = ["PREWARM_ALIAS", "RELEASE_GRACE_SECONDS", "Controller", "Routing"]

log = logging.getLogger(__name__)
MAX_APPS = 256  # per version in a heartbeat; more are summed as one
RELEASE_GRACE_SECONDS = 5.0  # between a request's pick and its engine: milliseconds
PROFILE_WINDOW_SECONDS = 3600.0  # the drift monitor sees the last one to two hours
# The alias a promotion points at its candidate before production moves: workers load and
# check it beside what they serve, so the move itself is a pointer swap everywhere.
PREWARM_ALIAS = "prewarm"


@dataclass(frozen=True)
class Routing:
    """The immutable routing table a request reads; replaced whole, never edited."""

    active: Served | None = None
    canary: Served | None = None
    canary_percent: float = 0.0
    standby: Served | None = None
    rollout_id: int | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    prewarmed: Served | None = None  # loaded and checked for a promotion; takes no traffic

    def roles(self) -> dict[str, str]:
        named = {"active": self.active, "canary": self.canary, "standby": self.standby}
        return {s.version: role for role, s in named.items() if s is not None}


def _ignore(routing: Routing) -> None:
    return None


class Controller:
    """Follows ``deployment@production`` in one worker process."""

    def __init__(
        self,
        registry: Registry | None,
        deployment: str,
        *,
        poll_seconds: float = 0.2,
        heartbeat_seconds: float = 0.5,
        worker_index: int = 0,
        adapters: AdapterPool | None = None,
        label: str = "",
        url: str | None = None,
    ) -> None:
        """``adapters``: the pool of shared bases, one per worker process, shared by the
        controllers of a server of many deployments; ``label`` tells their heartbeats apart."""
        self.registry = registry
        self.url = url
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{worker_index}" + (
            f"/{label}" if label else ""
        )
        self.started_at = datetime.now(UTC)
        self.routing = Routing()
        self.failures: dict[str, tuple[str, float]] = {}
        self._attempts: dict[str, int] = {}
        self._loaded: dict[str, Served] = {}
        # Versions routed away from, released once no request can still be on its way to
        # them (one that picked a version just before the swap reaches its engine later).
        self._retiring: dict[str, tuple[Served, float]] = {}
        self._swap_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats: dict[str, VersionStats] = {}
        self._app_stats: dict[str, dict[str, VersionStats]] = {}
        self._stats_rollout: int | None = None
        self._profiles: dict[str, RollingProfile] = {}  # not reset by rollouts: drift is slower
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beating: threading.Thread | None = None
        self._beat_lock = threading.Lock()
        self._last_beat = 0.0
        self._rng = random.Random()
        self.adapters = adapters or AdapterPool(max_batch=ENGINE_MAX_BATCH)  # shared bases
        self.on_routing: Callable[[Routing], None] = _ignore  # told of each new routing

    # -- requests --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.routing.active is not None

    def pick(self, key: str | None = None) -> tuple[Served, str]:
        """The version that answers this request, and its role (active or canary)."""
        routing = self.routing  # one read of one reference: a consistent table
        if routing.active is None:
            raise ArtifactError(f"no version of {self.deployment} is loaded yet")
        if routing.canary is not None and routes_to_canary(routing.canary_percent, key, self._rng):
            return routing.canary, "canary"
        return routing.active, "active"

    def record(self, version: str, latency_ms: float, failed: bool, app: str = "-") -> None:
        """One request the model ran (the canary's evidence), by the app that sent it."""
        with self._stats_lock:
            self._stats.setdefault(version, VersionStats()).observe(latency_ms, failed)
            apps = self._app_stats.setdefault(version, {})
            if app not in apps and len(apps) >= MAX_APPS:
                app = "(other apps)"
            apps.setdefault(app, VersionStats()).observe(latency_ms, failed)

    def record_inputs(self, version: str, profile: InputProfile) -> None:
        """Add one request's input/prediction profile to the version's (for the drift monitor)."""
        now = time.monotonic()
        with self._stats_lock:
            rolling = self._profiles.get(version)
            if rolling is None:
                rolling = self._profiles[version] = RollingProfile(PROFILE_WINDOW_SECONDS, now)
            rolling.add(profile, now)

    # -- following the registry ------------------------------------------------------------

    def _registry(self) -> Registry:
        if self.registry is None:
            raise RuntimeError("a pinned controller does not follow a registry")
        return self.registry

    def start(self) -> None:
        """The heartbeat thread, one synchronous sync (so a fresh worker is ready with
        production), then the thread that follows the registry.

        Heartbeats have their own thread: a worker busy loading a version for longer than
        the liveness window is still alive, and a promotion waits for it instead of counting
        it gone. A first sync that fails (registry down) leaves the worker up and not ready;
        the controller thread keeps trying."""
        self._beating = threading.Thread(
            target=self._beat_loop, name="conveyor-heartbeat", daemon=True
        )
        self._beating.start()
        try:
            self.sync()
        except Exception:
            log.warning("first sync of %s failed; not ready, retrying", self.worker, exc_info=True)
        self._thread = threading.Thread(target=self._run, name="conveyor-controller", daemon=True)
        self._thread.start()

    def _beat_loop(self) -> None:
        failing = RepeatedFailure(f"heartbeat of {self.worker} failed")
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self.beat()
                failing.ended()
            except Exception:  # the registry may be briefly unavailable: beat again soon
                failing.happened()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._beating):
            if thread is not None:
                thread.join(timeout=5)
        self._release_retired(grace=0.0)
        try:
            self._registry().forget_worker(self.worker)
        except Exception:  # shutting down: the heartbeat simply goes stale
            log.debug("could not remove heartbeat of %s", self.worker, exc_info=True)

    def _run(self) -> None:
        failing = RepeatedFailure("controller tick failed; still serving")
        while not self._stop.wait(self.poll_seconds):
            try:
                self.sync()
                if self.routing.canary is not None:
                    judge_rollout(self._registry(), self.deployment)
                failing.ended()
            except Exception:  # the registry may be briefly unavailable: keep serving
                failing.happened()

    def sync(self) -> None:
        registry = self._registry()
        production, rollout = registry.serving_target(self.deployment)
        desired = desired_state(production, rollout)
        self._apply(desired, registry.alias(self.deployment, PREWARM_ALIAS))
        self._release_retired()

    def _release_retired(self, grace: float = RELEASE_GRACE_SECONDS) -> None:
        """Give back the versions routed away from at least ``grace`` seconds ago."""
        now = time.monotonic()
        for version, (served, since) in list(self._retiring.items()):
            if now - since >= grace:
                del self._retiring[version]
                release_version(served, self.adapters)

    def _get(self, version: str | None) -> Served | None:
        """The loaded version, loading it beside the others if needed; None if it cannot serve."""
        if version is None:
            return None
        if version in self._loaded:
            return self._loaded[version]
        if version in self._retiring:  # wanted again before it was released: take it back
            served, _since = self._retiring.pop(version)
            self._loaded[version] = served
            return served
        failed = self.failures.get(version)
        attempts = self._attempts.get(version, 0)
        if failed and time.monotonic() - failed[1] < retry_delay(attempts):
            return None
        record = self._registry().resolve(version)  # registry down: the tick fails, not the version
        try:
            served = load_version(record, self.adapters)
        except (
            Exception
        ) as exc:  # any failure to load (onnxruntime, pydantic, OSError...) refuses it
            reason = load_failure(exc)
            self._attempts[version] = attempts + 1
            log.error(
                "%s refused %s (attempt %d, next in %.0f s): %s",
                self.worker, version, attempts + 1, retry_delay(attempts + 1), reason,
            )  # fmt: skip
            self.failures[version] = (reason, time.monotonic())
            self.beat()
            return None
        self.failures.pop(version, None)
        self._attempts.pop(version, None)
        self._loaded[version] = served
        log.info("%s loaded %s in %.2f s", self.worker, version, served.load_seconds)
        return served

    def _apply(self, desired: Desired, prewarm: str | None = None) -> None:
        current = self.routing
        active = self._get(desired.active) or current.active
        canary = self._get(desired.canary) if desired.canary else None
        if canary is not None and active is not None and canary.version == active.version:
            canary = None
        standby = current.standby
        if current.active is not None and active is not None and active is not current.active:
            standby = current.active
        if standby is not None and active is not None and standby.version == active.version:
            standby = None
        routed = {s.version for s in (active, canary, standby) if s is not None}
        # Loaded after the routed ones: a worker that starts serves production first.
        prewarmed = self._get(prewarm) if prewarm and prewarm not in routed else None
        unchanged = (
            active is current.active
            and canary is current.canary
            and standby is current.standby
            and prewarmed is current.prewarmed
            and desired.canary_percent == current.canary_percent
            and desired.rollout_id == current.rollout_id
        )
        if unchanged:
            return
        routing = Routing(
            active, canary, desired.canary_percent, standby, desired.rollout_id,
            prewarmed=prewarmed,
        )  # fmt: skip
        with self._swap_lock:
            self.routing = routing
            keep = routed | ({prewarmed.version} if prewarmed else set())
            dropped = [s for v, s in self._loaded.items() if v not in keep]
            self._loaded = {v: s for v, s in self._loaded.items() if v in keep}
        now = time.monotonic()
        for served in dropped:  # after the swap no new request picks them; released later
            self._retiring[served.version] = (served, now)
        with self._stats_lock:
            self._profiles = {v: p for v, p in self._profiles.items() if v in keep}
        self._reset_stats_for(desired.rollout_id)
        log.info("%s serves %s", self.worker, routing.roles())
        self.on_routing(routing)
        self.beat()

    def _reset_stats_for(self, rollout_id: int | None) -> None:
        with self._stats_lock:
            if rollout_id != self._stats_rollout:
                self._stats = {}
                self._app_stats = {}
                self._stats_rollout = rollout_id

    # -- reporting ----------------------------------------------------------------------------

    def stats(self) -> dict[str, VersionStats]:
        with self._stats_lock:
            return {
                v: VersionStats(s.requests, s.errors, list(s.buckets))
                for v, s in self._stats.items()
            }

    def profiles(self) -> dict[str, InputProfile]:
        now = time.monotonic()
        with self._stats_lock:
            return {v: p.snapshot(now) for v, p in self._profiles.items()}

    def _published_stats(self) -> dict[str, dict[str, object]]:
        """Per version: request figures, and the input profile under ``PROFILE_STATS_KEY``."""
        published: dict[str, dict[str, object]] = {v: s.as_dict() for v, s in self.stats().items()}
        with self._stats_lock:
            for version, apps in self._app_stats.items():
                figures = {app: one.as_dict() for app, one in apps.items()}
                published.setdefault(version, {})[APPS_KEY] = figures
        for version, profile in self.profiles().items():
            published.setdefault(version, {})[PROFILE_STATS_KEY] = profile.as_dict()
        return published

    def beat(self) -> None:
        with self._beat_lock:  # from the heartbeat thread and, after a change, the controller
            self._beat()

    def _beat(self) -> None:
        routing = self.routing
        failures = dict(self.failures)  # one copy: the controller thread may add to it
        self._last_beat = time.monotonic()
        self._registry().heartbeat(
            WorkerRecord(
                worker=self.worker,
                deployment=self.deployment,
                pid=os.getpid(),
                host=socket.gethostname(),
                started_at=self.started_at,
                updated_at=datetime.now(UTC),
                active_version=routing.active.version if routing.active else None,
                standby_version=routing.standby.version if routing.standby else None,
                canary_version=routing.canary.version if routing.canary else None,
                prewarmed_version=routing.prewarmed.version if routing.prewarmed else None,
                url=self.url,
                rollout_id=self._stats_rollout,
                failures={v: reason for v, (reason, _) in failures.items()},
                stats=self._published_stats(),
            )
        )
