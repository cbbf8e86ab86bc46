"""Ordinary concurrent traffic with varied texts: no request may fail (issue 13, item 0).

The demo server answered about 1% of varied concurrent requests with a 500 ``ValueError:
Unable to create tensor``: the drift profile tokenized on the event loop with the very
tokenizer the batcher was padding with on its own thread (reproduced in-process, every run,
by tests/serving/worker/test_profiler.py). Here sixteen clients walk the CLINC150 test texts
against a real ``bentoml serve`` with the profile on (every request a different text, so the
prediction cache does not answer them and batches mix lengths); every answer must be a 200.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.traffic import Traffic, count
from testbed.versions import make_version

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_varied_concurrent_traffic_gets_no_error(
    registry: Registry, settings: Settings, tokenizer: Any, fault_table: FaultTable
) -> None:
    version = make_version(registry, settings, tokenizer, 0)
    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings) as server, Traffic(server.port, clients=16) as traffic:
        time.sleep(8.0)
        status = server.status()
    answers = traffic.answers
    bad = [(a.status, a.body[:120]) for a in answers if a.status != 200]
    fault_table.add("varied concurrent traffic", "16 clients, a new CLINC150 text each", answers)
    assert count(answers).sent > 200, "the clients sent requests"
    assert bad == [], f"{len(bad)} of {len(answers)} failed, e.g. {bad[:3]}"
    assert {a.version for a in answers} == {version}
    assert status["cache"]["misses"] > len(answers) / 2, "the model answered most, not the cache"
