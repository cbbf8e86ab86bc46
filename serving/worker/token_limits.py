"""Token limits per application: reserved before a request decodes, settled after.

A language-model request may use at most ``prompt + max_tokens`` tokens, and that is known
before it decodes. :meth:`TokenLimiter.reserve` takes that many from the app's current minute
and UTC day at once, atomically (under a lock in this worker; in one Lua script in Redis,
shared by every worker and replica), or refuses: so a burst of concurrent requests can never
use more than the limit between them. :meth:`TokenLimiter.settle` gives back what the answer
did not use. A request whose worker dies before it settles keeps its whole reservation
charged: the limit errs on the side of the app's budget, never past it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from serving.worker.limits import seconds_to_midnight, today

__all__ = [
    "LocalTokenLimiter",
    "RedisTokenLimiter",
    "TokenLimiter",
    "TokenReservation",
    "TokensRefused",
]


@dataclass(frozen=True)
class TokenReservation:
    """Tokens taken from one app's minute and day windows, to settle once answered."""

    app: str
    tokens: int
    minute: int
    day: str


@dataclass(frozen=True)
class TokensRefused:
    """Why a reservation was refused: the window (``tokens_per_minute`` | ``tokens_per_day``),
    its limit, what is used in it, and how long until it resets."""

    window: str
    limit: int
    used: int
    retry_after: float


class TokenLimiter(Protocol):
    def reserve(
        self, app: str, tokens: int, per_minute: int | None, per_day: int | None
    ) -> TokenReservation | TokensRefused:
        """Take ``tokens`` from both windows, or take nothing and say which window is full."""
        ...

    def settle(self, reservation: TokenReservation, used: int) -> None:
        """Give back ``reservation.tokens - used`` (never more than was reserved)."""
        ...


def _minute(now: float) -> tuple[int, float]:
    """The fixed minute ``now`` falls in, and the seconds left in it."""
    return int(now // 60), 60 - now % 60


def _refused(
    window: str, limit: int | None, used: int, tokens: int, retry: float
) -> TokensRefused | None:
    if limit is not None and used + tokens > limit:
        return TokensRefused(window, limit, used, retry)
    return None


class LocalTokenLimiter:
    """This worker's count per app of the current minute and UTC day."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._minutes: dict[str, tuple[int, int]] = {}
        self._days: dict[str, tuple[str, int]] = {}

    def reserve(
        self, app: str, tokens: int, per_minute: int | None, per_day: int | None
    ) -> TokenReservation | TokensRefused:
        minute, left = _minute(self._clock())
        day = today()
        with self._lock:
            at, in_minute = self._minutes.get(app, (minute, 0))
            on, in_day = self._days.get(app, (day, 0))
            in_minute = in_minute if at == minute else 0
            in_day = in_day if on == day else 0
            refused = _refused(
                "tokens_per_day", per_day, in_day, tokens, seconds_to_midnight()
            ) or _refused("tokens_per_minute", per_minute, in_minute, tokens, left)
            if refused is not None:
                return refused
            self._minutes[app] = (minute, in_minute + tokens)
            self._days[app] = (day, in_day + tokens)
        return TokenReservation(app, tokens, minute, day)

    def settle(self, reservation: TokenReservation, used: int) -> None:
        unused = max(0, reservation.tokens - max(0, used))
        if not unused:
            return
        with self._lock:
            at, in_minute = self._minutes.get(reservation.app, (reservation.minute, 0))
            if at == reservation.minute:
                self._minutes[reservation.app] = (at, max(0, in_minute - unused))
            on, in_day = self._days.get(reservation.app, (reservation.day, 0))
            if on == reservation.day:
                self._days[reservation.app] = (on, max(0, in_day - unused))


# KEYS: minute counter, day counter. ARGV: tokens, minute limit (-1: none), day limit (-1:
# none). Returns {0, 0} when reserved, else {1 (minute) | 2 (day), what the window holds}.
_RESERVE = """
local tokens = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local per_day = tonumber(ARGV[3])
local in_minute = tonumber(redis.call('GET', KEYS[1]) or '0')
local in_day = tonumber(redis.call('GET', KEYS[2]) or '0')
if per_day >= 0 and in_day + tokens > per_day then return {2, in_day} end
if per_minute >= 0 and in_minute + tokens > per_minute then return {1, in_minute} end
redis.call('INCRBY', KEYS[1], tokens)
redis.call('EXPIRE', KEYS[1], 120)
redis.call('INCRBY', KEYS[2], tokens)
redis.call('EXPIRE', KEYS[2], 172800)
return {0, 0}
"""
# KEYS: minute counter, day counter. ARGV: tokens to give back. Never below zero.
_SETTLE = """
for _, key in ipairs(KEYS) do
  local left = tonumber(redis.call('GET', key) or '0')
  if left > 0 then redis.call('DECRBY', key, math.min(left, tonumber(ARGV[1]))) end
end
return 0
"""


class RedisTokenLimiter:
    """The same windows in Redis, shared by every worker and replica; one script each way."""

    def __init__(self, url: str, prefix: str = "conveyor", timeout: float = 0.5) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._prefix = prefix
        self._reserve: Any = self._redis.register_script(_RESERVE)
        self._settle: Any = self._redis.register_script(_SETTLE)

    def _keys(self, app: str, minute: int, day: str) -> list[str]:
        base = f"{self._prefix}:tokens:{app}"
        return [f"{base}:m:{minute}", f"{base}:d:{day}"]

    def reserve(
        self, app: str, tokens: int, per_minute: int | None, per_day: int | None
    ) -> TokenReservation | TokensRefused:
        minute, left = _minute(time.time())
        day = today()
        limits = [-1 if per_minute is None else per_minute, -1 if per_day is None else per_day]
        full, used = (
            int(v) for v in self._reserve(self._keys(app, minute, day), [tokens, *limits])
        )
        if full == 2 and per_day is not None:
            return TokensRefused("tokens_per_day", per_day, used, seconds_to_midnight())
        if full == 1 and per_minute is not None:
            return TokensRefused("tokens_per_minute", per_minute, used, left)
        return TokenReservation(app, tokens, minute, day)

    def settle(self, reservation: TokenReservation, used: int) -> None:
        unused = max(0, reservation.tokens - max(0, used))
        if unused:
            keys = self._keys(reservation.app, reservation.minute, reservation.day)
            self._settle(keys, [unused])
