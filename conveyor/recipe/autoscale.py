"""The recipe's ``serving.autoscale`` section: how Kubernetes scales a deployment's replicas.

``conveyor k8s render`` turns it into a KEDA ScaledObject (or a CPU HorizontalPodAutoscaler
where KEDA is absent); ``bench/autoscale_replay.py`` replays a real arrival trace through the
same HPA rules to choose these values. Bounds are the HorizontalPodAutoscaler API's own
(stabilization windows up to 3600 s, policy periods 1 to 1800 s), so a recipe that passes here
is never refused by the cluster.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

__all__ = ["AutoscaleSection"]

MAX_STABILIZATION_SECONDS = 3600  # HPAScalingRules.stabilizationWindowSeconds
MAX_POLICY_PERIOD_SECONDS = 1800  # HPAScalingPolicy.periodSeconds


class AutoscaleSection(BaseModel):
    """Replicas and the per-replica targets KEDA scales on (conveyor's own metrics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: PositiveInt = Field(
        default=1,
        description="Fewest replicas (>= 1: a scaled-to-zero deployment would answer its "
        "first request only after a cold start).",
    )
    max_replicas: PositiveInt = Field(default=4, le=1000, description="Most replicas.")
    target_in_flight: float = Field(
        default=8.0,
        gt=0,
        description="Classification: requests in flight per replica the scaler aims at.",
    )
    target_waiting: float = Field(
        default=2.0,
        gt=0,
        description="Causal-lm: requests waiting for their first token per replica.",
    )
    target_output_tokens_per_second: float = Field(
        default=60.0,
        gt=0,
        description="Causal-lm: output tokens/s per replica (the larger of the two metrics' "
        "replica counts wins).",
    )
    cpu_utilization_percent: int = Field(
        default=70,
        ge=1,
        le=100,
        description="The fallback HPA without KEDA (`k8s render --no-keda`): average CPU "
        "utilization of the requested CPU.",
    )
    polling_seconds: PositiveInt = Field(
        default=15, le=300, description="How often KEDA reads the metrics."
    )
    scale_up_stabilization_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_STABILIZATION_SECONDS,
        description="Scale up to the lowest replica count recommended over this window.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        ge=0,
        le=MAX_STABILIZATION_SECONDS,
        description="Scale down to the highest replica count recommended over this window.",
    )
    scale_up_pods: PositiveInt = Field(
        default=4, description="Most replicas added per `scale_up_period_seconds`."
    )
    scale_up_period_seconds: PositiveInt = Field(
        default=15, le=MAX_POLICY_PERIOD_SECONDS, description="The scale-up policy's period."
    )
    scale_down_pods: PositiveInt = Field(
        default=1, description="Most replicas removed per `cooldown_seconds`."
    )
    cooldown_seconds: PositiveInt = Field(
        default=60,
        le=MAX_POLICY_PERIOD_SECONDS,
        description="The scale-down policy's period: after removing `scale_down_pods`, wait "
        "this long before removing more.",
    )
    min_decode_tokens_per_second: float = Field(
        default=2.0,
        gt=0,
        description="Slowest stream a draining replica waits for: its grace period covers "
        "`serving.max_new_tokens` at this speed after the first-byte timeout.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas: {self.max_replicas} is below min_replicas "
                f"{self.min_replicas}; raise max_replicas or lower min_replicas"
            )
        return self
