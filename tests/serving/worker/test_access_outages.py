"""The key gate when what it reads is down, and rates below one per second on Redis
(issue 13, items 4 and 10). Real registries (SQLite, and a Postgres URL nothing listens on),
the machine's Redis on 6379 and a Redis URL nothing listens on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from conveyor.registry import Registry
from serving.api.validation import status_of
from serving.worker.access import Gate, Refused
from serving.worker.limits import LocalLimiter, RedisLimiter, rate_window
from testbed.live_server import port_open
from tests.serving.worker.test_cache_redis import URL, delete_matching

DOWN = "postgresql+psycopg://postgres@127.0.0.1:1/conveyor"


def test_rate_windows_never_allow_more_than_the_rate() -> None:
    assert rate_window(20) == (1, 20)
    assert rate_window(100 / 3600) == (36, 1)  # 100/hour, not 3,600/hour
    assert rate_window(0.5) == (2, 1)
    for rate in (100 / 3600, 0.3, 0.5, 1.5, 7.0):
        seconds, allowed = rate_window(rate)
        assert allowed / seconds <= rate + 1e-9


def test_an_unknown_key_with_the_registry_down_is_503_with_retry_after() -> None:
    down = Registry.from_url(DOWN, actor="test", migrate=False)
    gate = Gate(lambda: down, "d", required=True, limiter=LocalLimiter())
    with pytest.raises(Refused) as refused:
        gate.admit("Bearer cvy_never-seen")
    assert status_of(refused.value) == 503 and refused.value.retry_after


def test_a_key_known_before_the_outage_stays_good_for_stale_ttl(registry: Registry) -> None:
    _, key = registry.create_api_key("shop", ["d"])
    down = Registry.from_url(DOWN, actor="test", migrate=False)
    current = [registry]
    gate = Gate(lambda: current[0], "d", required=True, limiter=LocalLimiter(), key_ttl=0.0)
    assert gate.admit(f"Bearer {key}") == "shop"
    current[0] = down  # the registry goes away
    assert gate.admit(f"Bearer {key}") == "shop", "last known good"
    gate.keys.stale_ttl = 0.0
    with pytest.raises(Refused) as refused:
        gate.admit(f"Bearer {key}")
    assert status_of(refused.value) == 503


def test_limits_with_redis_down_fail_closed(registry: Registry) -> None:
    _, key = registry.create_api_key("shop", ["d"], rate_per_second=5)
    gate = Gate(lambda: registry, "d", required=True, limiter=RedisLimiter("redis://127.0.0.1:1/0"))
    with pytest.raises(Refused) as refused:
        gate.admit(f"Bearer {key}")
    assert status_of(refused.value) == 503 and refused.value.outcome == "unavailable"


@pytest.fixture
def prefix() -> Iterator[str]:
    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    prefix = f"conveyor-test-{uuid.uuid4().hex}"
    yield prefix
    delete_matching(f"{prefix}:*")


def test_a_rate_of_100_per_hour_on_redis_is_one_per_36_seconds(prefix: str) -> None:
    limiter = RedisLimiter(URL, prefix=prefix)
    answers = [limiter.take("app", 100 / 3600, None) for _ in range(5)]
    assert sum(answer is None for answer in answers) == 1
    refused = [a for a in answers if a is not None]
    assert all(reason == "rate" and 0 < retry <= 36 for reason, retry in refused)
