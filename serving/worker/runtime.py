"""One worker's serving state: the controller, the batcher, Prometheus metrics, the status view."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import torch

from conveyor.model_folder import ArtifactError
from conveyor.registry import Registry, VersionRecord, open_registry
from conveyor.settings import LOOPBACK_HOSTS, Settings, load_settings
from serving.canary.routing import PINNED_ROLE
from serving.engine.adapter_budget import AdapterBudget
from serving.engine.adapters import AdapterPool
from serving.engine.batcher import Batcher
from serving.engine.decoding import DecodeEngine
from serving.engine.inference import classify_texts, preload_model_libraries
from serving.engine.llamacpp_engine import LlamaCppEngine
from serving.refusal import Unavailable
from serving.worker.access import Gate, current_app
from serving.worker.cache import Cache, PredictionCache
from serving.worker.cache_redis import RedisPredictionCache, registry_namespace
from serving.worker.capture import CaptureRecorder
from serving.worker.controller import Controller, Routing
from serving.worker.limits import LocalLimiter, RedisLimiter
from serving.worker.loading import ENGINE_MAX_BATCH, Served, load_failure, load_version
from serving.worker.metrics import WorkerMetrics
from serving.worker.profiler import ProfileRecorder
from serving.worker.token_limits import LocalTokenLimiter, RedisTokenLimiter

__all__ = ["Runtime", "adapter_budget", "start_runtimes"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _forward(served: Served, texts: list[str], top_k: int) -> list[dict[str, Any]]:
    return classify_texts(served.loaded, texts, top_k, served.max_length)


@dataclass
class Runtime:
    controller: Controller
    batcher: Batcher
    metrics: WorkerMetrics
    pinned: str | None
    gate: Gate
    cache: Cache
    max_in_flight: int
    profiler: ProfileRecorder
    capture: CaptureRecorder
    in_flight: int = 0
    views_need_key: bool = False  # /v1/status and /metrics, beyond loopback
    _stop_usage: Any = None
    # Prompts are tokenized here, one at a time, never on the event loop: a huge prompt
    # costs its own request time, not every other request's.
    _tokenizing: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="conveyor-tokenize")
    )

    async def tokenize(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` (tokenizing a prompt) off the event loop, on this worker's one
        tokenizing thread (a tokenizer is not safe to call from two threads at once)."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._tokenizing, partial(context.run, work, *args))

    @property
    def deployment(self) -> str:
        return self.controller.deployment

    async def classify(
        self, served: Served, items: list[str], top_k: int
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        """Answers from the cache where this version already gave them, else from the model;
        and which the cache gave (a request the cache answered whole is no evidence of the
        model)."""
        found = self.cache.get_many(served.version, top_k, items)
        hits_of = [answer is not None for answer in found]
        missing = [i for i, answer in enumerate(found) if answer is None]
        hits = len(items) - len(missing)
        # Both series exist from the first lookup, so a hit rate of 0 reads 0, not "no data".
        self.metrics.cache.labels(self.deployment, served.version, "hit").inc(hits)
        self.metrics.cache.labels(self.deployment, served.version, "miss").inc(len(missing))
        if missing:
            texts = [items[i] for i in missing]
            computed = await self.batcher.submit(
                served, served.version, texts, top_k, served.max_batch_size
            )
            self.cache.put_many(served.version, top_k, texts, computed)
            for i, answer in zip(missing, computed, strict=True):
                found[i] = answer
        results = [answer for answer in found if answer is not None]
        series = (self.deployment, served.version)
        for answer in results:
            self.metrics.texts.labels(*series, answer["label"]).inc()
            self.metrics.confidence.labels(*series).observe(float(answer["score"]))
        for text in items:
            self.metrics.text_chars.labels(*series).observe(len(text))
        self._profile(served, items, results)
        return results, hits_of

    def _profile(self, served: Served, items: list[str], results: list[dict[str, Any]]) -> None:
        """Counts for the drift monitor (cache hits included: they are traffic too), made on
        the profiler's thread: only the batcher thread calls the served tokenizer."""
        self.profiler.submit(served.version, served.loaded.tokenizer, items, results)

    def pick(self, header: str | None) -> tuple[Served, str]:
        """The version for this request. With API keys on, the calling app decides the canary
        side (``X-Canary-Key`` is ignored: a client may not choose to be judged on); without
        them, the header does (a stable side per client), else a random draw."""
        key = current_app.get() if self.gate.required else header
        try:
            return self.controller.pick(key if key != "-" else None)
        except ArtifactError as exc:
            raise Unavailable(str(exc)) from exc

    def pinnable(self, app: str) -> dict[str, Served]:
        """The versions ``app`` may name as its model: none unless its key may pin; then every
        version this worker holds (active, canary, standby), answered as ``pinned``."""
        if not self.gate.may_pin(app):
            return {}
        routing = self.controller.routing
        held = (routing.active, routing.canary, routing.standby)
        return {served.version: served for served in held if served is not None}

    def active_version(self) -> str | None:
        active = self.controller.routing.active
        return active.version if active else None

    def observe(
        self,
        version: str,
        role: str,
        endpoint: str,
        start: float,
        *,
        failed: bool,
        app: str = "-",
        executed: bool = True,
        judged_ms: float | None = None,
    ) -> None:
        """Count one answered request; only those the model ran, on the version the split
        chose (not ``pinned`` by the caller), are canary evidence.
        ``judged_ms``: what the canary judge reads instead of the whole latency (a language
        model's time to first token: its whole latency is the length the client asked for)."""
        seconds = time.perf_counter() - start
        if executed and role != PINNED_ROLE:
            judged = judged_ms if judged_ms is not None else seconds * 1000
            self.controller.record(version, judged, failed, app)
        series = (self.deployment, version, role, endpoint)
        self.metrics.requests.labels(*series, app).inc()
        self.metrics.latency.labels(*series).observe(seconds)
        # The error series exists (at 0) from the first request: error rates read 0, not "no data".
        self.metrics.errors.labels(*series, app).inc(1 if failed else 0)

    def status(self) -> dict[str, Any]:
        routing: Routing = self.controller.routing
        loaded = []
        for role, served in (
            ("active", routing.active),
            ("canary", routing.canary),
            ("standby", routing.standby),
        ):
            if served is not None:
                loaded.append(
                    {
                        "version": served.version,
                        "role": role,
                        "task": served.task,
                        "backend": served.backend,
                        "loaded_at": served.loaded_at.isoformat(),
                        "load_seconds": round(served.load_seconds, 3),
                    }
                    | ({"engine": _engine_view(served.engine)} if served.engine else {})
                    | ({"adapter": served.adapter, "base": served.base} if served.adapter else {})
                )
        return {
            "deployment": self.controller.deployment,
            "worker": self.controller.worker,
            "pinned": self.pinned,
            "routing_since": routing.since.isoformat(),
            "canary_percent": routing.canary_percent if routing.canary else 0.0,
            "rollout": routing.rollout_id,
            "loaded": loaded,
            "bases": {  # LoRA versions: each base held once, the adapters on it, one engine
                key: {"engine": shared.engine.name, "adapters": sorted(shared.adapters)}
                for key, shared in self.controller.adapters.bases().items()
            },
            "failures": {v: reason for v, (reason, _) in self.controller.failures.items()},
            "capture": self.capture.state.view(),
            "cache": {
                "backend": self.cache.backend,
                "entries": len(self.cache),
                "hits": self.cache.hits,
                "misses": self.cache.misses,
                "errors": self.cache.errors,
            },
            "figures": {
                v: s.as_dict() | {"error_rate": s.error_rate}
                for v, s in self.controller.stats().items()
            },
        }

    def stop(self) -> None:
        self._tokenizing.shutdown(wait=False, cancel_futures=True)
        self.profiler.stop()
        self.capture.stop()
        if self._stop_usage is not None:
            self._stop_usage()
        if self.pinned is None:
            self.controller.stop()


def _pinned_record(tag: str) -> VersionRecord:
    """The version a Bento pins, from the metadata ``conveyor package`` stored with the model."""
    import bentoml

    model = bentoml.models.get(tag)
    info: dict[str, Any] = dict(model.info.metadata)
    return VersionRecord(
        version=str(info["version"]),
        deployment=str(info["deployment"]),
        number=int(info["number"]),
        task=str(info["task"]),
        base_model=str(info.get("base_model", "")),
        artifact_uri=model.path,
        data_fingerprint=info.get("data_fingerprint") or None,
        recipe=json.loads(str(info["recipe_json"])),
        serving_spec=json.loads(str(info.get("serving_spec_json") or "{}")),
        content_sha256=info.get("content_sha256") or None,
        metrics={},
        verdict=None,
        status="packaged",
        created_at=datetime.now(UTC),
        created_by="bento",
    )


def _exit_when_orphaned(interval: float = 1.0) -> None:
    """End this worker when its BentoML parent dies (a kill -9 of ``bentoml serve``).

    Workers run in their own process groups, so killing the server's group does not reach
    them; without this they would keep serving a port and heartbeating to the registry.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def start_runtimes(pinned: str | None = None) -> list[Runtime]:
    """This worker's runtimes, one per deployment it serves, from the environment ``conveyor
    serve`` (or a Bento) sets. Several deployments share the batcher, the metrics and one
    adapter pool (one base, the adapters within the settings' budget)."""
    from bentoml import server_context

    _exit_when_orphaned()

    settings = load_settings()
    torch.set_num_threads(settings.torch_threads or torch.get_num_threads())
    preload_model_libraries()  # not on the controller thread, competing with traffic
    metrics = WorkerMetrics()
    batcher = Batcher(_forward)  # each version's own serving.batching bounds its passes
    index = int(server_context.worker_index or 0)
    if pinned:
        controller = Controller(None, pinned.split(":")[0], worker_index=index)
        controller.on_routing = _routing_gauges(metrics, controller.deployment)
        try:
            controller.routing = Routing(active=load_version(_pinned_record(pinned)))
            controller.on_routing(controller.routing)
        except Exception as exc:  # up and not ready, saying why: never a restart loop
            controller.failures[pinned] = (load_failure(exc), time.monotonic())
            log.error("pinned model %s does not load: %s", pinned, controller.failures[pinned][0])
        return [_assemble(controller, batcher, metrics, pinned)]
    names = settings.served_deployments()
    if not names:
        raise RuntimeError(
            "nothing to serve: this is not a packaged Bento (a Bento carries its model pin), "
            "so set CONVEYOR_SERVE_DEPLOYMENT (conveyor serve does) or CONVEYOR_BENTO_MODEL"
        )
    registry = _open_for_serving(settings)
    pool = AdapterPool(
        max_batch=ENGINE_MAX_BATCH,
        budget=adapter_budget(settings),
        wait_seconds=settings.adapter_wait_seconds,
        single_base=len(names) > 1,
        events=metrics.adapters,
    )
    runtimes = []
    for deployment in names:
        controller = Controller(
            registry,
            deployment,
            poll_seconds=settings.poll_seconds,
            worker_index=index,
            adapters=pool,
            label=deployment if len(names) > 1 else "",
            url=settings.serve_url,
        )
        controller.on_routing = _routing_gauges(metrics, deployment)
        controller.start()
        runtimes.append(_assemble(controller, batcher, metrics, None))
    return runtimes


def adapter_budget(settings: Settings) -> AdapterBudget:
    """The worker's adapter bounds, from the settings (``conveyor serve`` flags)."""
    megabytes = settings.adapter_memory_mb
    return AdapterBudget(
        max_loaded=settings.max_loaded_adapters,
        budget_bytes=round(megabytes * 2**20) if megabytes is not None else None,
    )


def _routing_gauges(metrics: WorkerMetrics, deployment: str) -> Callable[[Routing], None]:
    def show(routing: Routing) -> None:
        percent = routing.canary_percent if routing.canary is not None else 0.0
        metrics.show_routing(deployment, routing.roles(), percent)

    return show


def _open_for_serving(settings: Settings) -> Registry:
    """The registry, migrated; when it is unreachable, opened without migrating (it connects
    when first used), so the worker starts, not ready, and its controller keeps trying."""
    try:
        return open_registry(settings)
    except Exception:
        log.warning("registry unreachable at start: not ready until it answers", exc_info=True)
        return Registry.from_url(settings.registry_url, actor=settings.actor, migrate=False)


def _cache(settings: Settings, deployment: str) -> Cache:
    """Shared through Redis when the settings say so, else this worker's LRU."""
    if settings.cache_kind == "redis" and settings.redis_url:
        return RedisPredictionCache(
            settings.redis_url,
            deployment,
            settings.cache_size,
            ttl=settings.cache_ttl_seconds,
            namespace=registry_namespace(settings.registry_url),
            secret=settings.cache_signing_key(),
        )
    return PredictionCache(settings.cache_size)


def _assemble(
    controller: Controller, batcher: Batcher, metrics: WorkerMetrics, pinned: str | None
) -> Runtime:
    """The edge of the worker: the key gate (with usage flushing), the cache, the bound."""
    settings = load_settings()
    opened: list[Registry] = [controller.registry] if controller.registry else []

    def registry() -> Registry:  # a pinned Bento opens the registry only when a key arrives
        if not opened:
            opened.append(open_registry(settings))
        return opened[0]

    redis = settings.redis_url
    gate = Gate(
        registry,
        controller.deployment,
        required=settings.auth_required,
        limiter=RedisLimiter(redis) if redis else LocalLimiter(),
        tokens=RedisTokenLimiter(redis) if redis else LocalTokenLimiter(),
    )
    runtime = Runtime(
        controller,
        batcher,
        metrics,
        pinned,
        gate=gate,
        cache=_cache(settings, controller.deployment),
        max_in_flight=settings.serve_max_in_flight,
        profiler=ProfileRecorder(controller.record_inputs),
        capture=CaptureRecorder(
            settings.home,
            controller.deployment,
            controller.worker,
            count=lambda outcome, n: metrics.capture.labels(controller.deployment, outcome).inc(n),
        ),
        views_need_key=settings.auth_required and settings.serve_host not in LOOPBACK_HOSTS,
    )
    runtime._stop_usage = gate.start_flushing()
    return runtime


def _engine_view(engine: DecodeEngine | LlamaCppEngine) -> dict[str, Any]:
    """An engine's figures, its name (one shared engine per base) and the adapters it holds."""
    return engine.stats() | {"name": engine.name, "adapters": sorted(engine.adapters())}
