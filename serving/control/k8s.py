"""A kustomize overlay that runs one deployment on Kubernetes and scales it on its own metrics.

Plain functions from plain values (:class:`Overlay`) to manifest dicts; ``conveyor k8s render``
fills the values from the registry and the recipe and writes the files. What each part holds:

- a Deployment of the version's Bento image, its Secrets referenced (never copied), ready only
  once the version is loaded and answered its smoke set (BentoML's ``/readyz`` asks the worker,
  which has an active version only after that), so a new replica takes no traffic before it can
  answer; scaled down, it leaves the endpoints (preStop), then drains every request it holds
  within ``terminationGracePeriodSeconds`` (:mod:`serving.worker.drain`);
- a Service, a PodDisruptionBudget (one replica at a time, whatever the count);
- a KEDA ScaledObject on Prometheus queries of conveyor's series: requests in flight per
  replica for a classifier; requests waiting for their first token and output tokens/s per
  replica for a language model; or, where KEDA is absent, an HPA on CPU. Both carry the
  recipe's replica bounds, stabilization windows and scale-up/down policies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from conveyor.errors import ConveyorError, RecipeError
from conveyor.model_folder import bento_model_tag
from conveyor.recipe.autoscale import AutoscaleSection
from conveyor.registry import VersionRecord
from conveyor.serving_spec import serving_spec_of
from serving.worker.drain import PRESTOP_SECONDS, termination_grace_seconds
from serving.worker.metrics import IN_FLIGHT, OUTPUT_TOKENS, WAITING

__all__ = [
    "Overlay",
    "autoscale_of",
    "hpa_behavior",
    "overlay_files",
    "overlay_for_version",
    "scaling_triggers",
    "write_overlay",
]

Manifest = dict[str, Any]
PORT = 3000
PREFIX = "conveyor-"  # of every object's name
MAX_NAME = 63  # a Service's name is a DNS label
SECRETS = (  # env var <- (Secret, key): created by the operator (docs/scale-out.md)
    ("CONVEYOR_DB_URL", "conveyor-db", "registry-url"),
    ("CONVEYOR_REDIS_URL", "conveyor-redis", "url"),
    ("CONVEYOR_CACHE_SECRET", "conveyor-serving", "cache-secret"),
)


@dataclass(frozen=True)
class Overlay:
    """What the overlay is made of, as plain values."""

    deployment: str  # conveyor's deployment (the metrics' `deployment` label)
    version: str  # the version the image pins
    task: str  # "classification" or "causal-lm"
    image: str  # repository/name:tag of the version's Bento image
    autoscale: AutoscaleSection
    max_new_tokens: int | None  # causal-lm: the recipe's serving.max_new_tokens
    namespace: str = "conveyor"
    keda: bool = True  # False: a CPU HorizontalPodAutoscaler instead of the ScaledObject
    prometheus: str = "http://prometheus:9090"
    cpu_request: str = "2"
    memory_request: str = "4Gi"
    memory_limit: str = "8Gi"

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME:
            raise ConveyorError(
                f"{self.name}: a Kubernetes Service name has at most {MAX_NAME} characters; "
                f"the deployment's name may have at most {MAX_NAME - len(PREFIX)}"
            )

    @property
    def name(self) -> str:
        return PREFIX + self.deployment

    @property
    def labels(self) -> dict[str, str]:
        # name=bento: infra/prometheus/prometheus.yml scrapes the pods by it
        return {
            "app.kubernetes.io/name": "bento",
            "app.kubernetes.io/instance": self.deployment,
            "app.kubernetes.io/part-of": "conveyor",
        }

    def meta(self) -> Manifest:
        return {"name": self.name, "namespace": self.namespace, "labels": self.labels}


def scaling_triggers(o: Overlay) -> list[tuple[str, str, float]]:
    """(name, PromQL, per-replica target) for each metric the deployment scales on.

    Each query sums the series over every pod of the deployment; the ScaledObject's
    ``AverageValue`` divides it by the replica count, so the target is per replica.
    """
    where = f'namespace="{o.namespace}",deployment="{o.deployment}"'
    a = o.autoscale
    if o.task == "causal-lm":
        return [
            ("waiting", f"sum({WAITING}{{{where}}})", a.target_waiting),
            (
                "output-tokens-per-second",
                f"sum(rate({OUTPUT_TOKENS}_sum{{{where}}}[1m]))",
                a.target_output_tokens_per_second,
            ),
        ]
    return [("in-flight", f"sum({IN_FLIGHT}{{{where}}})", a.target_in_flight)]


def hpa_behavior(a: AutoscaleSection) -> Manifest:
    """HorizontalPodAutoscalerBehavior: the same in the ScaledObject and the fallback HPA."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": a.scale_up_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": [
                {
                    "type": "Pods",
                    "value": a.scale_up_pods,
                    "periodSeconds": a.scale_up_period_seconds,
                }
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": a.scale_down_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": a.scale_down_pods, "periodSeconds": a.cooldown_seconds}
            ],
        },
    }


def _number(value: float) -> str:
    return f"{value:g}"


def scaled_object(o: Overlay) -> Manifest:
    a = o.autoscale
    triggers = [
        {
            "type": "prometheus",
            "name": name,
            "metricType": "AverageValue",
            "metadata": {"serverAddress": o.prometheus, "query": query, "threshold": _number(t)},
        }
        for name, query, t in scaling_triggers(o)
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": o.meta(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": o.name},
            "pollingInterval": a.polling_seconds,
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            # what the HPA falls back to when Prometheus does not answer: the floor
            "fallback": {"failureThreshold": 3, "replicas": a.min_replicas},
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(a)}},
            "triggers": triggers,
        },
    }


def cpu_autoscaler(o: Overlay) -> Manifest:
    a = o.autoscale
    cpu = {"type": "Utilization", "averageUtilization": a.cpu_utilization_percent}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": o.meta(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": o.name},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
            "behavior": hpa_behavior(a),
        },
    }


def _container(o: Overlay) -> Manifest:
    env: list[Manifest] = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, secret, key in SECRETS
    ]
    env += [
        {"name": "CONVEYOR_HOME", "value": "/var/lib/conveyor"},
        {"name": "BENTOML_DO_NOT_TRACK", "value": "True"},
    ]

    def probe(path: str, period: int, failures: int) -> Manifest:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    return {
        "name": "bento",
        "image": o.image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": env,
        "startupProbe": probe("/livez", 5, 60),
        "readinessProbe": probe("/readyz", 5, 2),  # loaded and smoke-checked
        "livenessProbe": probe("/livez", 10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "resources": {
            "requests": {"cpu": o.cpu_request, "memory": o.memory_request},
            "limits": {"memory": o.memory_limit},
        },
        "volumeMounts": [{"name": "home", "mountPath": "/var/lib/conveyor"}],
    }


def deployment(o: Overlay) -> Manifest:
    """No ``replicas``: the autoscaler owns the count (an applied count would fight it)."""
    grace = termination_grace_seconds(o.max_new_tokens, o.autoscale.min_decode_tokens_per_second)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": o.meta() | {"annotations": {"conveyor.dev/version": o.version}},
        "spec": {
            "revisionHistoryLimit": 10,
            "minReadySeconds": 5,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "selector": {"matchLabels": o.labels},
            "template": {
                "metadata": {"labels": o.labels},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [_container(o)],
                    "volumes": [{"name": "home", "emptyDir": {}}],
                },
            },
        },
    }


def service(o: Overlay) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": o.meta(),
        "spec": {
            "selector": o.labels,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def disruption_budget(o: Overlay) -> Manifest:
    """One replica at a time through voluntary disruptions, at any replica count (a
    ``minAvailable`` equal to a floor of one would block every node drain)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": o.meta(),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": o.labels}},
    }


def overlay_files(o: Overlay) -> dict[str, list[Manifest]]:
    """File name -> the documents it holds, ``kustomization.yaml`` included."""
    scaler = ("scaledobject.yaml", scaled_object(o)) if o.keda else ("hpa.yaml", cpu_autoscaler(o))
    files: dict[str, list[Manifest]] = {
        "deployment.yaml": [deployment(o)],
        "service.yaml": [service(o)],
        "pdb.yaml": [disruption_budget(o)],
        scaler[0]: [scaler[1]],
    }
    kustomization: Manifest = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": o.namespace,
        "resources": sorted(files),
    }
    return {"kustomization.yaml": [kustomization], **files}


def autoscale_of(recipe: dict[str, Any], source: str) -> AutoscaleSection:
    """A stored recipe's ``serving.autoscale`` (defaults where it has none), or RecipeError
    naming each bad key."""
    serving = recipe.get("serving") if isinstance(recipe, dict) else None
    raw = serving.get("autoscale", {}) if isinstance(serving, dict) else {}
    try:
        return AutoscaleSection.model_validate(raw or {})
    except ValidationError as exc:
        problems = [
            "serving.autoscale." + ".".join(map(str, e["loc"])) + f": {e['msg']}"
            if e["loc"]
            else f"serving.autoscale: {e['msg']}"
            for e in exc.errors()
        ]
        raise RecipeError(source, problems) from exc


def overlay_for_version(
    record: VersionRecord,
    image_repository: str,
    autoscale: AutoscaleSection | None = None,
    **options: Any,
) -> Overlay:
    """The overlay of a registered version: its Bento image, task and serving cap, and the
    recipe's autoscale settings (``autoscale`` given: those instead)."""
    settings = autoscale or autoscale_of(record.recipe, record.version)
    tag = bento_model_tag(record.version, record.artifact_uri, record.content_sha256)
    causal = record.task == "causal-lm"
    overlay = Overlay(
        deployment=record.deployment,
        version=record.version,
        task=record.task,
        image=f"{image_repository.rstrip('/')}/{record.deployment}:{tag.split(':', 1)[1]}",
        autoscale=settings,
        max_new_tokens=serving_spec_of(record).max_new_tokens if causal else None,
    )
    return replace(overlay, **options)


def write_overlay(files: dict[str, list[Manifest]], out: Path) -> list[Path]:
    """Write each file of the overlay under ``out`` (created); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in files.items():
        path = out / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
