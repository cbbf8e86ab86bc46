"""The deployments one worker serves: one :class:`Runtime` each, a request routed to one.

``conveyor serve A,B,C`` (or ``--base NAME``) starts workers that follow several deployments
on one base: each deployment keeps its own controller (production alias, canary, rollback),
key gate, limits, cache, capture and per-deployment metrics; they share the worker's
batcher, metrics registry and adapter pool. The OpenAI ``model`` field (a deployment, or a
version ``DEPLOYMENT:vN`` to pin) picks the deployment; ``/classify`` takes the
``X-Conveyor-Deployment`` header. A server of one deployment routes everything to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from serving.refusal import Refusal, RefusalKind
from serving.worker.runtime import Runtime, start_runtimes

__all__ = ["DEPLOYMENT_HEADER", "Fleet", "current_runtime", "start_fleet"]

DEPLOYMENT_HEADER = "x-conveyor-deployment"  # which deployment a /classify call is for
CLASSIFY_PATH = "/classify"
# The deployment the edge routed this request to (set once the request is admitted).
current_runtime: ContextVar[Runtime | None] = ContextVar("conveyor_runtime", default=None)


def _not_here(model: str, served: list[str]) -> Refusal:
    return Refusal(
        RefusalKind.NOT_FOUND,
        f"The model '{model}' does not exist here: this server serves "
        + ", ".join(f"'{name}'" for name in served),
        field="model",
        code="model_not_found",
    )


@dataclass(frozen=True)
class Fleet:
    """The runtimes of one worker, by deployment (in the order they were named)."""

    runtimes: Mapping[str, Runtime]

    @property
    def first(self) -> Runtime:
        return next(iter(self.runtimes.values()))

    @property
    def many(self) -> bool:
        return len(self.runtimes) > 1

    def current(self) -> Runtime:
        """The runtime the edge routed this request to; the first outside a request."""
        return current_runtime.get() or self.first

    def routed(self) -> Runtime | None:
        """The runtime this request was routed to; for several, None before routing (a
        refusal at the edge names no deployment's version)."""
        return current_runtime.get() or (None if self.many else self.first)

    def route(self, path: str, headers: Mapping[str, str], body: Any) -> Runtime:
        """The runtime a request is for: the OpenAI ``model`` (a deployment or one of its
        versions), or the ``X-Conveyor-Deployment`` header; a refusal (404 in OpenAI's shape)
        naming what this server serves when it serves no such deployment. A request that
        names none is the first deployment's to answer (its handler says what is missing)."""
        served = list(self.runtimes)
        if path == CLASSIFY_PATH or DEPLOYMENT_HEADER in headers:
            name = headers.get(DEPLOYMENT_HEADER)
            if name is None:
                raise Refusal(
                    RefusalKind.INVALID,
                    f"this server serves several deployments ({', '.join(served)}): name one "
                    "in the X-Conveyor-Deployment header",
                    field=DEPLOYMENT_HEADER,
                )
            if name not in self.runtimes:
                raise _not_here(name, served)
            return self.runtimes[name]
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            return self.first
        deployment = model.split(":", 1)[0]
        if deployment not in self.runtimes:
            raise _not_here(model, served)
        return self.runtimes[deployment]

    @property
    def ready(self) -> bool:
        return all(runtime.controller.ready for runtime in self.runtimes.values())

    def stop(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop()

    def status(self) -> dict[str, Any]:
        """One deployment: its runtime's view (and the adapter pool); several: each one's
        view by name, and the pool they share."""
        pool = self.first.controller.adapters.view()
        if not self.many:
            return self.first.status() | {"adapter_pool": pool}
        views = {name: runtime.status() for name, runtime in self.runtimes.items()}
        return {"deployments": views, "adapter_pool": pool}


def start_fleet(pinned: str | None = None) -> Fleet:
    """This worker's runtimes (:func:`~serving.worker.runtime.start_runtimes`) as a fleet."""
    return Fleet({runtime.deployment: runtime for runtime in start_runtimes(pinned)})
