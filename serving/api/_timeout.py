"""BentoML's request timeout without its timer leak (BentoML 1.4.39).

``bentoml._internal.server.http.traffic.TimeoutMiddleware`` schedules
``loop.call_later(timeout, ...)`` for every request and never cancels the handle. Each
handle keeps the request's waiter future, and through it the request's context (tracing
span, scope, callbacks) alive until the timeout passes, 120 s here. At a few hundred
requests/s a worker holds tens of thousands of finished requests, and the garbage
collector's full passes over them stop the worker for 0.3-0.5 s every few seconds: that
was the p99 spike seen during promotions (BENCHMARKS.md, "Serving").

:class:`TimeoutMiddleware` here behaves the same (504 with the same JSON once the timeout
passes with no response started) and cancels its timer as soon as the response starts or
the request ends. :func:`install` makes BentoML build its apps with it; BentoML imports the
class by name when it builds a worker's middleware stack, after the service module loaded.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse

__all__ = ["TimeoutMiddleware", "install"]

_Upstream = traffic.TimeoutMiddleware


class TimeoutMiddleware(_Upstream):
    """504 when no response has started within ``timeout`` seconds; the timer is cancelled."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def started(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
                timer.cancel()
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, started))
        try:
            await waiter
        except TimeoutError:
            if handler.cancel():
                error = f"Not able to process the request in {self.timeout} seconds"
                await JSONResponse({"error": error}, status_code=504)(scope, receive, send)
            return
        finally:
            timer.cancel()
            if not waiter.done():  # the request was cancelled from outside: let go of it
                waiter.cancel()
        await handler


def install() -> None:
    """Make BentoML use :class:`TimeoutMiddleware` for apps it builds from now on."""
    traffic.TimeoutMiddleware = TimeoutMiddleware  # type: ignore[misc]
