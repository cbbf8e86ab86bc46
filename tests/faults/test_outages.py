"""Outages of what serving depends on, under load (issue 13, item 4).

Each test starts its own Redis or PostgreSQL on another port, so it can kill it: the
answers while it is down must be 200s or 503s with ``Retry-After`` (fail closed, never open,
never a 500 or a hang), and the service must come back by itself when it returns.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.fault_table import FaultTable
from testbed.live_server import running_server, wait_ready
from testbed.services import own_postgres, own_redis
from testbed.traffic import Traffic, count, varied_classify
from testbed.versions import DEPLOYMENT, make_version

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _keyed(registry: Registry, settings: Settings, tokenizer: Any) -> dict[str, str]:
    promote(registry, make_version(registry, settings, tokenizer, 0), canary_percent=0, timeout=5)
    _, key = registry.create_api_key("shop", [DEPLOYMENT])
    return {"authorization": f"Bearer {key}"}


def test_redis_killed_under_load(
    tokenizer: Any, fault_table: FaultTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_redis() as redis:
        monkeypatch.setenv("CONVEYOR_REQUIRE_API_KEY", "true")
        monkeypatch.setenv("CONVEYOR_REDIS_URL", redis.url)
        settings = Settings()
        registry = Registry.from_url(settings.registry_url, actor="test")
        headers = _keyed(registry, settings, tokenizer)
        with (
            running_server(settings) as server,
            Traffic(server.port, 4, varied_classify(headers=headers)) as traffic,
        ):
            time.sleep(2.0)
            down = time.monotonic()
            redis.kill9()
            time.sleep(4.0)
            redis.start()
            up = time.monotonic()
            time.sleep(3.0)
    during = traffic.between(down, up)
    row = fault_table.add("Redis killed", "kill -9 of the limits/cache Redis for 4 s", during)
    assert row["lost"] == 0, [a.status for a in during if a.status not in (200, 503)][:5]
    assert row["unavailable"] > 0, "limits cannot be checked: 503, never unlimited"
    after = traffic.between(up + 1.5)
    assert after and count(after).ok == len(after), "back by itself once Redis is"


def test_postgres_restarted_under_load(
    tokenizer: Any, fault_table: FaultTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_postgres() as postgres:
        monkeypatch.setenv("CONVEYOR_REQUIRE_API_KEY", "true")
        monkeypatch.setenv("CONVEYOR_DB_URL", postgres.url)
        settings = Settings()
        registry = Registry.from_url(settings.registry_url, actor="test")
        headers = _keyed(registry, settings, tokenizer)
        with (
            running_server(settings) as server,
            Traffic(server.port, 4, varied_classify(headers=headers)) as traffic,
        ):
            time.sleep(3.0)  # the key is known (and remembered) before the outage
            down = time.monotonic()
            postgres.stop()
            time.sleep(5.0)
            postgres.start()
            up = time.monotonic()
            time.sleep(4.0)
        registry.close()
    during = traffic.between(down, up)
    row = fault_table.add(
        "Postgres restarted", "registry's Postgres stopped (immediate) for 5 s, started", during
    )
    assert row["lost"] == 0, [a.status for a in during if a.status not in (200, 503)][:5]
    assert row["ok"] > 0, "a key checked before the outage stays good (last known good)"
    after = traffic.between(up + 2.0)
    assert after and count(after).ok == len(after)


def test_registry_unreachable_at_worker_start(
    tokenizer: Any, fault_table: FaultTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_postgres() as postgres:
        monkeypatch.setenv("CONVEYOR_DB_URL", postgres.url)
        settings = Settings()
        registry = Registry.from_url(settings.registry_url, actor="test")
        version = make_version(registry, settings, tokenizer, 0)
        promote(registry, version, canary_percent=0, timeout=5)
        registry.close()
        postgres.stop()
        with running_server(settings, ready=False) as server:
            with Traffic(server.port, 2) as traffic:
                time.sleep(3.0)
                up = time.monotonic()
                postgres.start()
                wait_ready(server.port, timeout=60)
                ready = time.monotonic()
                time.sleep(2.0)
    before = traffic.between(0, up)
    row = fault_table.add(
        "registry unreachable at worker start",
        "worker started with the registry's Postgres down, then it came up",
        traffic.answers,
        ready_after_s=round(ready - up, 1),
    )
    assert row["lost"] == 0, [a.status for a in traffic.answers if a.status not in (200, 503)][:5]
    assert before and {a.status for a in before} == {503}, "up, not ready, saying so"
    after = traffic.between(ready + 0.5)
    assert after and {a.version for a in after} == {version} and count(after).ok == len(after)
