"""A stopped Redis (SIGSTOP: connections hang, nothing answers) never holds up a worker.

The Redis is the test's own, started on a free port and really stopped; the limits behind
it fail closed (503 with Retry-After), the store is asked once per interval rather than once
per request, and giving back unused tokens never waits on it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conveyor.registry import Registry
from serving.api.validation import status_of
from serving.worker.access import Gate, Refused
from serving.worker.limits import RedisLimiter
from serving.worker.token_limits import RedisTokenLimiter
from testbed.services import OwnRedis, own_redis

pytestmark = pytest.mark.redis


@contextmanager
def stopped(server: OwnRedis) -> Iterator[None]:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def test_limits_behind_a_stopped_redis_fail_closed_and_ask_it_once_per_interval(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = registry.create_api_key("shop", ["d"], rate_per_second=1000, tokens_per_minute=10**6)
    with own_redis() as server:
        gate = Gate(
            lambda: registry,
            "d",
            required=True,
            limiter=RedisLimiter(server.url),
            tokens=RedisTokenLimiter(server.url),
        )
        assert gate.admit(f"Bearer {key}") == "shop"
        held = gate.reserve_tokens("shop", 100)
        assert held is not None
        with stopped(server), caplog.at_level(logging.WARNING, "serving.worker.access"):
            settled = threading.Event()
            gate.settle_tokens(held, 10)  # returns at once: the store is written elsewhere
            settled.set()
            statuses = []
            for _ in range(50):
                with pytest.raises(Refused) as refused:
                    gate.admit(f"Bearer {key}")
                statuses.append(status_of(refused.value))
                assert refused.value.retry_after
            with pytest.raises(Refused) as tokens:
                gate.reserve_tokens("shop", 100)
            asked = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert settled.is_set() and set(statuses) == {503} and status_of(tokens.value) == 503
        assert len(asked) == 1, "the stopped store was asked more than once per interval"
