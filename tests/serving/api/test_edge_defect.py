"""A defect while admitting a request (not a refusal) is a fast 500, never a hung request."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from serving.api.edge import EdgeGuard
from serving.worker.metrics import WorkerMetrics


class _BrokenGate:
    required = True

    def admit(self, authorization: str | None, tokens: bool = False) -> str:
        raise KeyError("a bug in the gate")


@pytest.mark.parametrize(("path", "openai"), [("/classify", False), ("/v1/chat/completions", True)])
def test_an_edge_defect_answers_500_at_once(path: str, openai: bool) -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    runtime = SimpleNamespace(
        gate=_BrokenGate(), metrics=metrics, deployment="d", in_flight=0, max_in_flight=8
    )
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"text": "hi"}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": "POST",
        "headers": [(b"authorization", b"Bearer k"), (b"content-type", b"application/json")],
    }
    guard = EdgeGuard(app, get_runtime=lambda: runtime)
    asyncio.run(asyncio.wait_for(guard(scope, receive, send), timeout=5))
    assert not reached, "the request never reaches a model"
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    message = body["error"]["message"] if openai else body["error"]
    assert "failed while admitting" in message
    assert metrics.admission.labels("d", "-", "edge_error")._value.get() == 1
