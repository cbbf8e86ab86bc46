"""The trace replay tool against a real `bentoml serve` of a tiny random Llama.

Thirty seconds of the shipped Azure trace slice, three times as fast and a twentieth of the token
sizes: every request is sent at its time and ends in exactly one counted outcome; the
per-minute table covers every request; the worker's autoscaling gauges (requests in flight,
requests waiting for a first token) are back at 0 once all were answered. Then the server is
stopped as the kubelet stops a pod scaled down (SIGTERM): a stream it holds still ends with
``[DONE]`` (the drain ``conveyor k8s render`` sizes the grace period for).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
from pathlib import Path

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.azure_trace import SLICE, read_trace, scale
from testbed.live_server import running_server
from testbed.tiny_models import write_tiny_llama
from testbed.trace_replay import TraceTarget, outcomes, replay_live
from testbed.trace_report import minute_rows
from testbed.versions import DEPLOYMENT, register_llm

pytestmark = pytest.mark.integration


def _gauge(exported: str, name: str) -> float:
    found = re.search(rf'^{name}{{deployment="{DEPLOYMENT}"}} (\S+)$', exported, re.MULTILINE)
    assert found, f"{name} is not exported"
    return float(found.group(1))


def _stream_through_sigterm(port: int, group: int) -> tuple[int, bool]:
    """A 400-token stream; SIGTERM to the server's process group after its third chunk."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"model": DEPLOYMENT, "prompt": "The", "max_tokens": 400, "temperature": 0}
    body["stream"] = True
    conn.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    chunks = 0
    for raw in conn.getresponse():
        line = raw.strip()
        if line == b"data: [DONE]":
            return chunks, True
        if line.startswith(b"data: "):
            chunks += 1
            if chunks == 3:
                os.killpg(group, signal.SIGTERM)
    return chunks, False


def test_a_trace_replay_counts_every_answer_and_the_gauges_settle(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    register_llm(registry, settings, folder, max_new_tokens=400)
    arrivals = scale(
        read_trace(SLICE, limit_seconds=30),
        rate=3.0,
        tokens=0.05,
        max_prompt_tokens=200,
        max_output_tokens=16,
    )
    assert len(arrivals) >= 40
    with running_server(settings) as server:
        sent = replay_live(TraceTarget("127.0.0.1", server.port, DEPLOYMENT), arrivals)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/metrics")
        exported = conn.getresponse().read().decode()
        chunks, finished = _stream_through_sigterm(server.port, server.process.pid)
        assert server.process.wait(timeout=60) == 0
    assert chunks > 3 and finished, f"the stream was cut after {chunks} chunks"
    counted = outcomes(sent)
    assert sum(counted.values()) == len(arrivals)
    assert counted == {"ok": len(arrivals)}, counted
    assert all(s.ttft <= s.e2e for s in sent)
    rows = minute_rows([s.due for s in sent], [s.ttft for s in sent], [s.e2e for s in sent], 3.0)
    assert sum(r.requests for r in rows) == len(arrivals) == sum(r.answered for r in rows)
    assert _gauge(exported, "conveyor_in_flight_requests") == 0
    assert _gauge(exported, "conveyor_waiting_requests") == 0
    assert 'conveyor_output_tokens_count{deployment="tiny-serve"' in exported
