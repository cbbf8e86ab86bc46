"""The OpenAI-compatible routes, mounted under ``/v1``: chat and text completions, models."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving.api.openai.protocol import ApiError
from serving.api.openai.responses import error_response, models_body
from serving.api.openai.serving import answer
from serving.worker.access import current_app

if TYPE_CHECKING:
    from serving.worker.fleet import Fleet
    from serving.worker.runtime import Runtime

__all__ = ["openai_router"]


def openai_router(
    get_runtime: Callable[[], Runtime | None], get_fleet: Callable[[], Fleet | None] = lambda: None
) -> APIRouter:
    """``POST /chat/completions``, ``POST /completions``, ``GET /models`` (under ``/v1``);
    ``get_runtime``: the runtime this request was routed to; ``get_fleet``: every one."""
    router = APIRouter()

    @router.post("/chat/completions", include_in_schema=False)
    async def chat_completions(request: Request) -> Response:
        return await answer(request, get_runtime(), "chat")

    @router.post("/completions", include_in_schema=False)
    async def completions(request: Request) -> Response:
        return await answer(request, get_runtime(), "completion")

    @router.get("/models", include_in_schema=False)
    async def models() -> Response:
        runtime = get_runtime()
        if runtime is None:
            return error_response(ApiError(503, "the worker is starting", retry_after=1.0))
        created = int(runtime.controller.routing.since.timestamp())
        fleet = get_fleet()
        if fleet is not None and fleet.many:  # a server of many: every deployment it serves
            data = [models_body(name, [], created)["data"][0] for name in fleet.runtimes]
            return JSONResponse({"object": "list", "data": data})
        pinnable = list(runtime.pinnable(current_app.get()))
        return JSONResponse(models_body(runtime.deployment, pinnable, created))

    return router
