"""The BentoML service: thin glue from HTTP to the controller, the batcher and the inference code.

``conveyor serve`` starts ``bentoml serve serving.api.service:Conveyor`` with
``CONVEYOR_SERVE_DEPLOYMENT`` set: every worker follows that deployment's production alias
(several deployments on one base, comma-separated: a request's ``model`` picks one).
A packaged Bento serves the one model pinned in its source (:mod:`serving.bento_pin`), which
``CONVEYOR_BENTO_MODEL`` overrides.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, cast

import bentoml
from fastapi import FastAPI

from conveyor.offline import apply_offline_environment
from conveyor.settings import load_settings
from serving.bento_pin import pinned_model

SETTINGS = load_settings()  # this process is a service: it reads its settings at start
apply_offline_environment(SETTINGS)  # before any library can reach the network

from serving.api import _timeout  # noqa: E402
from serving.api.capture import Recording  # noqa: E402
from serving.api.edge import EdgeGuard  # noqa: E402
from serving.api.openai.api_router import openai_router  # noqa: E402
from serving.api.openapi import ApiFacts, OpenApiPages  # noqa: E402
from serving.api.validation import RequestError, check_texts, status_of  # noqa: E402
from serving.refusal import Refusal  # noqa: E402
from serving.worker.access import current_app  # noqa: E402
from serving.worker.drain import FIRST_BYTE_TIMEOUT_S  # noqa: E402
from serving.worker.fleet import Fleet, start_fleet  # noqa: E402
from serving.worker.runtime import Runtime  # noqa: E402

__all__ = ["Conveyor"]

log = logging.getLogger(__name__)
WORKERS = SETTINGS.serve_workers
PINNED = pinned_model(SETTINGS.bento_model)  # from the Bento's src/; none in the checkout
# no FastAPI docs of its own: the Swagger page at / is the documented one, and these would
# be served without a key (/v1/docs even loads its page from a CDN)
admin = FastAPI(title="conveyor admin", docs_url=None, redoc_url=None, openapi_url=None)
_fleet: Fleet | None = None
_timeout.install()  # BentoML's own timeout middleware keeps every request alive for 120 s


def _current() -> Runtime | None:
    """The runtime of the deployment this request was routed to (the only one, for one)."""
    return _fleet.current() if _fleet is not None else None


admin.include_router(openai_router(_current, lambda: _fleet))  # chat, completions, models


class ModelVersionHeader:
    """ASGI middleware: every response names a version (the active one unless an API did)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-model-version" for name, _ in headers):
                    runtime = _fleet.routed() if _fleet is not None else None
                    version = runtime.active_version() if runtime else None
                    headers.append((b"x-model-version", (version or "none").encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


@bentoml.service(
    name="conveyor",
    workers=WORKERS,
    traffic={"timeout": FIRST_BYTE_TIMEOUT_S, "max_concurrency": 256},
)
@bentoml.asgi_app(admin, path="/v1")
class Conveyor:
    """``/classify``, the OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions`` and
    ``/v1/models`` (causal-lm versions), ``/v1/status``; BentoML adds readyz, livez, metrics."""

    pinned_model = bentoml.models.BentoModel(PINNED) if PINNED else None

    def __init__(self) -> None:
        global _fleet
        self.fleet = start_fleet(pinned=PINNED)
        _fleet = self.fleet
        # What is alive now (libraries, the first model) lives as long as the worker: keep it
        # out of the collector's full passes, which would otherwise stop every request while
        # they walk the whole heap.
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.fleet.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def _shutdown(self) -> None:
        self.fleet.stop()

    @property
    def runtime(self) -> Runtime:
        """The runtime of the deployment this request was routed to."""
        return self.fleet.current()

    def _refuse(self, ctx: bentoml.Context, exc: Refusal) -> dict[str, Any]:
        ctx.response.status_code = status_of(exc)
        app = current_app.get()
        self.runtime.metrics.refused(self.runtime.deployment, "/classify", status_of(exc), app)
        if exc.retry_after is not None:
            ctx.response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return {"error": exc.reason, "field": exc.field} if exc.field else {"error": exc.reason}

    @bentoml.api(route="/classify")  # type: ignore[untyped-decorator]
    async def classify(
        self,
        ctx: bentoml.Context,
        text: str | None = None,
        texts: list[str] | None = None,
        top_k: int = 1,
    ) -> dict[str, Any]:
        """Label one text or a list: each with its label, score and the top-k labels."""
        start = time.perf_counter()
        try:
            served, role = self.runtime.pick(ctx.request.headers.get("x-canary-key"))
        except Refusal as exc:
            return self._refuse(ctx, exc)
        ctx.response.headers["X-Model-Version"] = served.version
        ctx.response.headers["X-Model-Role"] = role
        record = Recording(self.runtime, served, role, start)
        try:
            items = check_texts(
                text, texts, top_k, max_texts=served.max_texts, max_chars=served.max_chars
            )
            if served.task != "classification":
                raise RequestError(
                    404, f"{served.version} is a {served.task} model: use /v1/chat/completions"
                )
        except Refusal as exc:
            record.refused(status_of(exc), [text] if text is not None else texts or [])
            return self._refuse(ctx, exc)
        try:
            results, hits = await self.runtime.classify(served, items, top_k)
        except Exception as exc:
            self.runtime.observe(
                served.version, role, "classify", start, failed=True, app=current_app.get()
            )
            record.failed(items)
            ctx.response.status_code = 500
            log.error("classify on %s failed: %s", served.version, exc)
            return {"error": f"the model failed: {type(exc).__name__}"}
        self.runtime.observe(
            served.version,
            role,
            "classify",
            start,
            failed=False,
            app=current_app.get(),
            executed=not all(hits),
        )
        record.answered(items, results, hits)
        return {"version": served.version, "results": results}

    @admin.get("/status")
    def status(self) -> dict[str, Any]:
        """Versions loaded in this worker, their roles and since when, and their figures."""
        return self.fleet.status()


def _api_facts() -> ApiFacts | None:
    """What the Swagger page documents: this deployment and the version serving now."""
    runtime = _current()
    if runtime is None:
        return None
    active = runtime.controller.routing.active
    if active is None:
        return ApiFacts(runtime.deployment, None, None, keys_required=runtime.gate.required)
    return ApiFacts(
        runtime.deployment,
        active.version,
        active.task,
        max_texts=active.max_texts,
        max_chars=active.max_chars,
        max_new_tokens=active.max_new_tokens,
        keys_required=runtime.gate.required,
    )


# The first added is outermost: every response, edge refusals too, passes ModelVersionHeader.
cast(Any, Conveyor).add_asgi_middleware(ModelVersionHeader)
cast(Any, Conveyor).add_asgi_middleware(OpenApiPages, facts=_api_facts)
cast(Any, Conveyor).add_asgi_middleware(
    EdgeGuard,
    get_runtime=_current,
    get_router=lambda: _fleet.route if _fleet is not None and _fleet.many else None,
)
