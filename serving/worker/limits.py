"""Rate limits, daily quotas and token limits per application: in this worker or in Redis.

A :class:`Limiter` counts requests (a token bucket per app, burst = one second of rate, and
a count per UTC day), in this worker or in Redis, shared by every worker and replica (token
limits are in ``serving.worker.token_limits``). The :class:`~serving.worker.access.Gate` asks
them; they never raise a refusal themselves.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from conveyor.errors import ConveyorError

__all__ = [
    "Limiter",
    "LocalLimiter",
    "RedisLimiter",
    "parse_quota",
    "parse_rate",
    "rate_window",
    "seconds_to_midnight",
    "today",
]

log = logging.getLogger(__name__)
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}
_QUOTA = re.compile(r"^\s*(\d+)\s*(?:/\s*(d|day))?\s*$")


def parse_rate(text: str) -> float:
    """``20/s``, ``600/min``, ``5000/hour`` or a bare number: requests per second."""
    match = _RATE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConveyorError(f"rate '{text}': give requests per time, e.g. 20/s or 600/min")
    return float(match.group(1)) / _PER[match.group(2)]


def parse_quota(text: str) -> int:
    """``100000/day`` or a bare number: requests per UTC day."""
    match = _QUOTA.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ConveyorError(f"quota '{text}': give requests per day, e.g. 100000/day")
    return int(match.group(1))


def today(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def seconds_to_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


class Limiter(Protocol):
    def take(self, app: str, rate: float | None, quota: int | None) -> tuple[str, float] | None:
        """Count one request: None when admitted, else ("rate" | "quota", retry after s)."""
        ...

    def refresh(self, totals: dict[str, int]) -> None:
        """The day's totals per app as the registry has them (after a usage flush)."""
        ...


class LocalLimiter:
    """Token bucket per app (burst = one second of rate) and a daily count, in this worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._baseline: dict[str, int] = {}
        self._since_refresh: dict[str, int] = {}
        self._day = today()

    def take(self, app: str, rate: float | None, quota: int | None) -> tuple[str, float] | None:
        with self._lock:
            if today() != self._day:
                self._day, self._baseline, self._since_refresh = today(), {}, {}
            if quota is not None:
                used = self._baseline.get(app, 0) + self._since_refresh.get(app, 0)
                if used >= quota:
                    return "quota", seconds_to_midnight()
            if rate is not None:
                now = self._clock()
                capacity = max(1.0, rate)
                tokens, last = self._buckets.get(app, (capacity, now))
                tokens = min(capacity, tokens + (now - last) * rate)
                if tokens < 1.0:
                    self._buckets[app] = (tokens, now)
                    return "rate", (1.0 - tokens) / rate
                self._buckets[app] = (tokens - 1.0, now)
            self._since_refresh[app] = self._since_refresh.get(app, 0) + 1
            return None

    def refresh(self, totals: dict[str, int]) -> None:
        with self._lock:
            self._baseline = dict(totals)
            self._since_refresh = {}


def rate_window(rate: float) -> tuple[int, int]:
    """``(seconds, requests)``: the fixed window a rate is counted in, and how many it allows.

    One second at 1/s or more; below, the shortest whole window that allows one request, so
    100/hour is one per 36 s (never 3,600/hour, a one-second window's floor). Never over."""
    seconds = 1 if rate >= 1 else math.ceil(1 / rate - 1e-9)
    return seconds, max(1, math.floor(rate * seconds + 1e-9))


class RedisLimiter:
    """Fixed windows (:func:`rate_window`) and a per-day counter in Redis, shared by every
    process."""

    def __init__(self, url: str, prefix: str = "conveyor") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix

    def take(self, app: str, rate: float | None, quota: int | None) -> tuple[str, float] | None:
        now = time.time()
        pipe = self._redis.pipeline()
        day_key = f"{self._prefix}:quota:{app}:{today()}"
        window, allowed = rate_window(rate) if rate is not None else (1, 0)
        window_key = f"{self._prefix}:rate:{app}:{window}:{int(now // window)}"
        pipe.incr(day_key)
        pipe.expire(day_key, 2 * 86400)
        pipe.incr(window_key)
        pipe.expire(window_key, window + 1)
        used, _, in_window, _ = pipe.execute()
        if quota is not None and int(used) > quota:
            self._redis.decr(day_key)
            return "quota", seconds_to_midnight()
        if rate is not None and int(in_window) > allowed:
            self._redis.decr(day_key)
            return "rate", window - (now % window)
        return None

    def refresh(self, totals: dict[str, int]) -> None:
        """Redis holds the shared count already."""
