"""Client mistakes against a real ``bentoml serve``: answered fast, with a 4xx or a 200, and
never the model's fault (issue 13, item 5).

- a flood of 1,000-level nested JSON bodies (2 KB each) beside ordinary traffic: each a 400
  in milliseconds, the ordinary clients all answered;
- texts far longer than the model's context (16 positions, the recipe says 48): truncated to
  what the model embeds, answered 200, and the version's error count stays 0.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.clinc import clinc_texts
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.traffic import Request, Traffic, count, varied_classify
from testbed.versions import make_version

pytestmark = [pytest.mark.integration, pytest.mark.faults]

NESTED = b'{"text": ' + b"[" * 1000 + b"]" * 1000 + b"}"


def _nested(client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
    return "/classify", NESTED, {}


def _long(client: int, index: int) -> tuple[str, bytes, dict[str, str]]:
    texts = clinc_texts()
    text = " ".join(texts[(client * 101 + index + i) % len(texts)] for i in range(30))[:2000]
    return "/classify", json.dumps({"text": text}).encode(), {}


def _run(port: int, request: Request, clients: int, seconds: float) -> tuple[Traffic, Traffic]:
    """``clients`` sending ``request`` beside 4 ordinary clients, for ``seconds``."""
    with (
        Traffic(port, clients=4, request=varied_classify()) as ordinary,
        Traffic(port, clients=clients, request=request) as faulty,
    ):
        time.sleep(seconds)
    return ordinary, faulty


def test_nested_json_floods_and_over_long_texts_are_the_clients_not_the_models(
    registry: Registry, settings: Settings, tokenizer: Any, fault_table: FaultTable
) -> None:
    version = make_version(registry, settings, tokenizer, 0, positions=16)
    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings) as server:
        ordinary, flood = _run(server.port, _nested, clients=8, seconds=5.0)
        ordinary_long, long = _run(server.port, _long, clients=8, seconds=5.0)
        figures = server.status()["figures"][version]

    row = fault_table.add(
        "nested-JSON flood",
        "8 clients sending 1,000-level nested bodies beside 4 ordinary clients",
        ordinary.answers + flood.answers,
        nested_p99_ms=round(
            1000 * sorted(a.seconds for a in flood.answers)[-len(flood.answers) // 100 - 1], 1
        ),
    )
    assert {a.status for a in flood.answers} == {400} and len(flood.answers) > 100
    assert row["nested_p99_ms"] < 500, "a 400 in milliseconds, not a stalled worker"
    assert count(ordinary.answers).ok == len(ordinary.answers) > 0
    assert row["lost"] == 0

    row = fault_table.add(
        "over-long prompts",
        "8 clients sending 2,000-character texts to a 16-position model beside 4 ordinary",
        ordinary_long.answers + long.answers,
        version_errors=figures["errors"],
    )
    assert {a.status for a in long.answers} == {200} and len(long.answers) > 50
    assert count(ordinary_long.answers).ok == len(ordinary_long.answers) > 0
    assert row["lost"] == 0 and figures["errors"] == 0 and figures["requests"] > 50
