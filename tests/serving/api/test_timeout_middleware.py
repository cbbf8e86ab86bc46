"""The request-timeout middleware: answered requests let go of their timers; slow ones get 504.

BentoML's own middleware left one live timer per request for the whole timeout (120 s here),
each keeping the finished request reachable; the collector's full passes over them paused
the worker for 0.3-0.5 s (BENCHMARKS.md, "Serving"). These tests run the real middleware on a
real event loop with plain ASGI apps.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from bentoml._internal.server.base_app import BaseAppFactory
from bentoml._internal.server.http import traffic

from serving.api import _timeout

pytestmark = pytest.mark.unit


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(5)
    await _answer(scope, receive, send)


async def _call(middleware: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware({"type": "http", "path": "/classify", "headers": []}, receive, send)
    return sent


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    return sum(1 for handle in scheduled if not handle.cancelled())


def _live_timers_after(middleware_class: Any, requests: int) -> int:
    async def run() -> int:
        middleware = middleware_class(_answer, timeout=120)
        for _ in range(requests):
            sent = await _call(middleware)
            assert sent[0]["status"] == 200
        return _live_timers(asyncio.get_running_loop())

    return asyncio.run(run())


def test_answered_requests_leave_no_live_timer() -> None:
    assert _live_timers_after(_timeout.TimeoutMiddleware, 200) == 0


def test_upstream_middleware_keeps_one_timer_per_request() -> None:
    """The defect the replacement exists for; if BentoML fixes it, this test says so."""
    assert _live_timers_after(_timeout._Upstream, 200) >= 200


def test_a_request_past_the_timeout_gets_504_with_a_reason() -> None:
    async def run() -> list[dict[str, Any]]:
        return await _call(_timeout.TimeoutMiddleware(_slow, timeout=0.05))

    sent = asyncio.run(run())
    assert sent[0]["status"] == 504
    body = json.loads(sent[1]["body"])
    assert "0.05 seconds" in body["error"]


def test_install_makes_bentoml_build_apps_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic, "TimeoutMiddleware", traffic.TimeoutMiddleware)

    class App(BaseAppFactory):
        name = "probe"

    _timeout.install()
    classes = [m.cls for m in App(timeout=120).middlewares]
    assert _timeout.TimeoutMiddleware in classes
