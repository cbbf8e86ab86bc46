"""Token reservations in Redis: two limiters stand for two workers (or replicas) of one app.

Against the machine's Redis on 127.0.0.1:6379 (skips with the reason when absent), under a
key prefix of the test's own, deleted afterwards; the dead-Redis case points at a closed port.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.worker.token_limits import RedisTokenLimiter, TokenReservation, TokensRefused
from testbed.live_server import port_open
from tests.serving.worker.test_cache_redis import URL, delete_matching

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not port_open("127.0.0.1", 6379), reason="no Redis on 127.0.0.1:6379"),
]


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"conveyor-test-{uuid.uuid4().hex[:8]}"
    yield name
    delete_matching(f"{name}:*")


def test_a_burst_over_two_workers_reserves_at_most_the_limit(prefix: str) -> None:
    workers = [RedisTokenLimiter(URL, prefix=prefix) for _ in range(2)]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: workers[i % 2].reserve("shop", 50, 200, 10_000), range(30))
        )
    granted = [r for r in results if isinstance(r, TokenReservation)]
    refused = [r for r in results if isinstance(r, TokensRefused)]
    assert len(granted) == 4 and len(refused) == 26
    assert all(r.window == "tokens_per_minute" and r.limit == 200 for r in refused)
    workers[1].settle(granted[0], 10)  # 40 unused come back, through the other worker
    assert isinstance(workers[0].reserve("shop", 40, 200, 10_000), TokenReservation)
    assert isinstance(workers[0].reserve("shop", 1, 200, 10_000), TokensRefused)


def test_a_day_limit_is_shared_and_settling_never_goes_below_zero(prefix: str) -> None:
    limiter = RedisTokenLimiter(URL, prefix=prefix)
    held = limiter.reserve("cafe", 70, None, 100)
    assert isinstance(held, TokenReservation)
    day = limiter.reserve("cafe", 31, None, 100)
    assert isinstance(day, TokensRefused) and (day.window, day.used) == ("tokens_per_day", 70)
    limiter.settle(held, 0)
    limiter.settle(held, 0)  # twice: the counters stop at zero
    assert isinstance(limiter.reserve("cafe", 100, None, 100), TokenReservation)


def test_redis_down_raises_so_the_gate_fails_closed() -> None:
    limiter = RedisTokenLimiter("redis://127.0.0.1:1/0", prefix="x")
    with pytest.raises(Exception, match="(?i)connect"):
        limiter.reserve("shop", 1, 10, None)
