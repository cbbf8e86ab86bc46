"""One worker's Prometheus series, per deployment, model version, role and app.

Created after BentoML set prometheus_client's multiprocess mode, so every worker's figures
add up on ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from serving.canary.stats import LATENCY_BUCKETS_MS

__all__ = ["IN_FLIGHT", "OUTPUT_TOKENS", "WAITING", "AdapterSeries", "WorkerMetrics"]

# The series the autoscaler queries (``serving.control.k8s``): named once, here.
IN_FLIGHT = "conveyor_in_flight_requests"
WAITING = "conveyor_waiting_requests"
OUTPUT_TOKENS = "conveyor_output_tokens"

TTFT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OUTPUT_TOKENS_BUCKETS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TOKENS_PER_SECOND_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
TEXT_CHARS_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class WorkerMetrics:
    """Prometheus series per model version (created after BentoML set multiprocess mode).

    ``registry`` is prometheus_client's default one unless a test passes its own.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        into = registry if registry is not None else REGISTRY
        labels = ["deployment", "version", "role", "endpoint"]
        self.requests = Counter(
            "conveyor_requests", "Requests answered by a model", [*labels, "app"], registry=into
        )
        self.errors = Counter(
            "conveyor_errors", "Requests the model failed", [*labels, "app"], registry=into
        )
        self.latency = Histogram(
            "conveyor_request_seconds",
            "Latency of model requests",
            labels,
            buckets=[b / 1000 for b in LATENCY_BUCKETS_MS],
            registry=into,
        )
        self.admission = Counter(
            "conveyor_admission",
            "Requests at the edge by app and outcome (ok, unauthorized, forbidden, "
            "rate_limited, quota_exceeded, overloaded)",
            ["deployment", "app", "outcome"],
            registry=into,
        )
        self.cache = Counter(
            "conveyor_cache_lookups",
            "Prediction cache lookups per text (outcome: hit or miss)",
            ["deployment", "version", "outcome"],
            registry=into,
        )
        self.capture = Counter(
            "conveyor_capture_rows",
            "Captured rows by outcome (written; dropped: the capture's queue was full; "
            "lost: a write failed and the capture stopped)",
            ["deployment", "outcome"],
            registry=into,
        )
        self.refusals = Counter(
            "conveyor_refusals",
            "Requests refused with a 4xx, by path and status: at the edge (401, 403, 413, "
            "415, 429) and by validation (400, 404, 422); the request's fault, never the model's",
            ["deployment", "path", "status", "app"],
            registry=into,
        )
        self._routing_series(into)
        self.adapters = AdapterSeries(into)
        self._load_series(into)
        self._language_model_series(into)
        self._drift_series(into)

    def refused(self, deployment: str, path: str, status: int, app: str) -> None:
        """Count a refusal when it is a 4xx (a 5xx is not the request's fault)."""
        if 400 <= status < 500:
            self.refusals.labels(deployment, path, str(status), app).inc()

    def _routing_series(self, into: Any) -> None:
        from prometheus_client import Gauge

        # livemax: over the live workers, 1 when any holds the version in that role
        self.model_info = Gauge(
            "conveyor_model_info",
            "1 for each version a live worker holds, by role (active, canary, standby); "
            "0 once it no longer does",
            ["deployment", "version", "role"],
            registry=into,
            multiprocess_mode="livemax",
        )
        self.canary_percent = Gauge(
            "conveyor_canary_percent",
            "Share of traffic (percent) the live workers route to the canary; 0 without one",
            ["deployment"],
            registry=into,
            multiprocess_mode="livemax",
        )
        self._shown: dict[str, set[tuple[str, str, str]]] = {}  # per deployment

    def show_routing(self, deployment: str, roles: dict[str, str], canary_percent: float) -> None:
        """Set the routing gauges to what this worker holds now (``roles``: version -> role)."""
        now = {(deployment, version, role) for version, role in roles.items()}
        for gone in self._shown.get(deployment, set()) - now:
            self.model_info.labels(*gone).set(0)
        for held in now:
            self.model_info.labels(*held).set(1)
        self._shown[deployment] = now
        self.canary_percent.labels(deployment).set(canary_percent)

    def _load_series(self, into: Any) -> None:
        from prometheus_client import Gauge

        # livesum: the replica's load is its live workers' added up (the autoscaler's input)
        self.in_flight = Gauge(
            IN_FLIGHT,
            "Model requests admitted and not yet answered (the autoscaler's classifier metric)",
            ["deployment"],
            registry=into,
            multiprocess_mode="livesum",
        )
        self.waiting = Gauge(
            WAITING,
            "Language models: requests sent to the engine that have no output token yet "
            "(the autoscaler's queue metric)",
            ["deployment"],
            registry=into,
            multiprocess_mode="livesum",
        )

    def _language_model_series(self, into: Any) -> None:
        from prometheus_client import Counter, Histogram

        version = ["deployment", "version", "role"]
        self.first_token = Histogram(
            "conveyor_time_to_first_token_seconds",
            "Language models: from the request to its first output token",
            version,
            buckets=TTFT_BUCKETS_S,
            registry=into,
        )
        self.output_tokens = Histogram(
            OUTPUT_TOKENS,
            "Language models: completion tokens per answer (the _sum is every token produced)",
            version,
            buckets=OUTPUT_TOKENS_BUCKETS,
            registry=into,
        )
        self.tokens_per_second = Histogram(
            "conveyor_output_tokens_per_second",
            "Language models: each answer's decode speed after its first token",
            version,
            buckets=TOKENS_PER_SECOND_BUCKETS,
            registry=into,
        )
        self.finish = Counter(
            "conveyor_finish_reasons",
            "Language models: answers by finish reason (stop, length, cancelled: client gone)",
            [*version, "reason"],
            registry=into,
        )

    def _drift_series(self, into: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.texts = Counter(
            "conveyor_predicted_labels",
            "Texts classified, by predicted label (for drift dashboards)",
            ["deployment", "version", "label"],
            registry=into,
        )
        self.confidence = Histogram(
            "conveyor_prediction_confidence",
            "Score of the predicted label per text (drift: a falling mean means unsure answers)",
            ["deployment", "version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=into,
        )
        self.text_chars = Histogram(
            "conveyor_input_chars",
            "Length of each classified text in characters (drift: the inputs changed shape)",
            ["deployment", "version"],
            buckets=TEXT_CHARS_BUCKETS,
            registry=into,
        )


def _deployment(version: str) -> str:
    return version.split(":", 1)[0]


class AdapterSeries:
    """LoRA adapters on this worker's shared base: how many are loaded (and their bytes),
    loads and evictions per deployment, and how long requests waited for a cold adapter."""

    def __init__(self, into: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.loaded_count = Gauge(
            "conveyor_adapters_loaded",
            "LoRA adapters loaded in the live workers' models",
            registry=into,
            multiprocess_mode="livesum",
        )
        self.loaded_bytes = Gauge(
            "conveyor_adapter_bytes_loaded",
            "Bytes of LoRA adapter weights loaded in the live workers",
            registry=into,
            multiprocess_mode="livesum",
        )
        self.loads = Counter(
            "conveyor_adapter_loads", "Adapter loads (first and after eviction)",
            ["deployment"], registry=into,
        )  # fmt: skip
        self.evictions = Counter(
            "conveyor_adapter_evictions", "Adapters evicted to make room (least recently used)",
            ["deployment"], registry=into,
        )  # fmt: skip
        self.load_seconds = Histogram(
            "conveyor_adapter_load_seconds", "Time to load an adapter onto the shared base",
            ["deployment"], buckets=TTFT_BUCKETS_S, registry=into,
        )  # fmt: skip
        self.cold_wait = Histogram(
            "conveyor_adapter_cold_wait_seconds",
            "How long a request waited for its evicted adapter to load again",
            ["deployment"], buckets=TTFT_BUCKETS_S, registry=into,
        )  # fmt: skip

    def loaded(self, version: str, seconds: float) -> None:
        self.loads.labels(_deployment(version)).inc()
        self.load_seconds.labels(_deployment(version)).observe(seconds)

    def evicted(self, version: str) -> None:
        self.evictions.labels(_deployment(version)).inc()

    def waited(self, version: str, seconds: float) -> None:
        self.cold_wait.labels(_deployment(version)).observe(seconds)

    def holding(self, adapters: int, nbytes: int) -> None:
        self.loaded_count.set(adapters)
        self.loaded_bytes.set(nbytes)
