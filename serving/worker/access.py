"""Who may call the service and how often: API keys, rate limits, daily quotas, usage.

The :class:`Gate` answers one question per request: which application is calling, or a
a :class:`~serving.refusal.Refusal` saying why not (401 unknown or revoked key, 403
a deployment the key may not call, 429 over rate or quota, with ``retry_after``). Keys are
checked against the registry (SHA-256 only) and remembered for ``key_ttl`` seconds, so a
revocation takes effect within that time. Limits are counted per worker by default
(:class:`LocalLimiter`) or in Redis, shared by every worker and replica (:class:`RedisLimiter`).
Usage per app and UTC day is flushed to the registry, where ``conveyor keys list`` reads it.

With keys off (``require_api_key`` false), a call without a key is anonymous, and so is one
whose Bearer token is not a conveyor key (no ``cvy_`` prefix): OpenAI clients always send
one, and ``api_key="-"`` must work there. A ``cvy_`` key is always checked, so a mistyped or
revoked key is told so rather than passed as anonymous.
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from conveyor.errors import ConveyorError
from conveyor.registry import API_KEY_PREFIX, ApiKeyRecord, Registry, hash_api_key
from serving.refusal import Refusal, RefusalKind

__all__ = [
    "Gate",
    "Refused",
    "Limiter",
    "LocalLimiter",
    "LocalTokenLimiter",
    "RedisLimiter",
    "RedisTokenLimiter",
    "TokenLimiter",
    "current_app",
    "parse_quota",
    "parse_rate",
    "rate_window",
    "today",
]

log = logging.getLogger(__name__)
current_app: contextvars.ContextVar[str] = contextvars.ContextVar("conveyor_app", default="-")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}
UNAVAILABLE_RETRY_SECONDS = 2.0
MAX_KEYS_CACHED = 10_000
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


class Refused(Refusal):
    """A caller refused, with the app (when known) and the outcome label for metrics."""

    def __init__(
        self,
        kind: RefusalKind,
        reason: str,
        outcome: str,
        app: str = "-",
        retry: float | None = None,
    ) -> None:
        super().__init__(kind, reason, retry_after=retry)
        self.outcome = outcome
        self.app = app


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


class TokenLimiter(Protocol):
    """Tokens (prompt + completion) per app, counted in fixed UTC minutes and days."""

    def check(
        self, app: str, per_minute: int | None, per_day: int | None
    ) -> tuple[str, float] | None:
        """None when the app has tokens left, else ("tokens_per_minute" | "tokens_per_day",
        retry after s). A request's tokens are known only once answered: the check admits
        while the window is under its limit, and :meth:`spend` counts what was used."""
        ...

    def spend(self, app: str, tokens: int) -> None: ...


def _minute(now: float) -> tuple[int, float]:
    """The fixed minute ``now`` falls in, and the seconds left in it."""
    return int(now // 60), 60 - now % 60


class LocalTokenLimiter:
    """This worker's count per app of the current minute and UTC day."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._minutes: dict[str, tuple[int, int]] = {}
        self._days: dict[str, tuple[str, int]] = {}

    def _used(self, app: str) -> tuple[int, int, float]:
        minute, left = _minute(self._clock())
        at, in_minute = self._minutes.get(app, (minute, 0))
        day, in_day = self._days.get(app, (today(), 0))
        return (in_minute if at == minute else 0), (in_day if day == today() else 0), left

    def check(
        self, app: str, per_minute: int | None, per_day: int | None
    ) -> tuple[str, float] | None:
        with self._lock:
            in_minute, in_day, left = self._used(app)
        if per_day is not None and in_day >= per_day:
            return "tokens_per_day", seconds_to_midnight()
        if per_minute is not None and in_minute >= per_minute:
            return "tokens_per_minute", left
        return None

    def spend(self, app: str, tokens: int) -> None:
        with self._lock:
            in_minute, in_day, _ = self._used(app)
            self._minutes[app] = (_minute(self._clock())[0], in_minute + tokens)
            self._days[app] = (today(), in_day + tokens)


class RedisTokenLimiter:
    """The same windows in Redis, shared by every worker and replica."""

    def __init__(self, url: str, prefix: str = "conveyor") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix

    def _keys(self, app: str, now: float) -> tuple[str, str]:
        minute = _minute(now)[0]
        base = f"{self._prefix}:tokens:{app}"
        return f"{base}:m:{minute}", f"{base}:d:{today()}"

    def check(
        self, app: str, per_minute: int | None, per_day: int | None
    ) -> tuple[str, float] | None:
        now = time.time()
        in_minute, in_day = (int(v or 0) for v in self._redis.mget(self._keys(app, now)))
        if per_day is not None and in_day >= per_day:
            return "tokens_per_day", seconds_to_midnight()
        if per_minute is not None and in_minute >= per_minute:
            return "tokens_per_minute", _minute(now)[1]
        return None

    def spend(self, app: str, tokens: int) -> None:
        minute_key, day_key = self._keys(app, time.time())
        pipe = self._redis.pipeline()
        pipe.incrby(minute_key, tokens)
        pipe.expire(minute_key, 120)
        pipe.incrby(day_key, tokens)
        pipe.expire(day_key, 2 * 86400)
        pipe.execute()


def _refusal(record: ApiKeyRecord, reason: str) -> tuple[str, str]:
    """What limit the app is over, and the admission metric's outcome."""
    if reason == "rate":
        return f"rate limit of {record.rate_per_second or 0:g}/s", "rate_limited"
    if reason == "quota":
        return f"daily quota of {record.quota_per_day}", "quota_exceeded"
    if reason == "tokens_per_minute":
        return f"limit of {record.tokens_per_minute} tokens per minute", "tokens_limited"
    return f"limit of {record.tokens_per_day} tokens per day", "quota_exceeded"


class Gate:
    """Admits a request for ``deployment`` given its ``Authorization`` header, and counts usage."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        deployment: str,
        *,
        required: bool,
        limiter: Limiter,
        tokens: TokenLimiter | None = None,
        key_ttl: float = 2.0,
        stale_ttl: float = 300.0,
    ) -> None:
        self._registry = registry
        self.deployment = deployment
        self.required = required
        self.limiter = limiter
        self.tokens: TokenLimiter = tokens or LocalTokenLimiter()
        self.key_ttl = key_ttl
        self.stale_ttl = stale_ttl
        self._keys: OrderedDict[str, tuple[ApiKeyRecord | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        self._day = today()

    def admit(self, authorization: str | None, *, tokens: bool = False) -> str:
        """The calling app ("-" when anonymous calls are allowed), or :class:`Refused`.
        ``tokens``: a language-model call, also refused over the key's token limits."""
        if not authorization:
            if self.required:
                raise Refused(
                    RefusalKind.UNAUTHENTICATED,
                    "missing API key: send 'Authorization: Bearer <key>'",
                    "unauthorized",
                )
            return "-"
        scheme, _, raw = authorization.strip().partition(" ")
        token = raw.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(
                RefusalKind.UNAUTHENTICATED,
                "malformed Authorization header: use 'Bearer <key>'",
                "unauthorized",
            )
        if not self.required and not token.startswith(API_KEY_PREFIX):
            return "-"  # a placeholder (OpenAI clients always send a key); keys are off here
        record = self._verify(token)
        if record is None:
            raise Refused(RefusalKind.UNAUTHENTICATED, "unknown or revoked API key", "unauthorized")
        if self.deployment not in record.deployments and "*" not in record.deployments:
            raise Refused(
                RefusalKind.FORBIDDEN,
                f"app '{record.app}' may not call {self.deployment}",
                "forbidden",
                record.app,
            )
        try:
            refused = self._tokens_left(record) if tokens else None
            if refused is None:
                refused = self.limiter.take(
                    record.app, record.rate_per_second, record.quota_per_day
                )
        except Exception as exc:  # Redis down: fail closed (never unlimited), and say when to retry
            log.warning("rate limiter unavailable: %s", exc)
            raise Refused(
                RefusalKind.UNAVAILABLE,
                "rate limits cannot be checked right now; retry shortly",
                "unavailable",
                record.app,
                UNAVAILABLE_RETRY_SECONDS,
            ) from exc
        self._count(record.app, refused is not None)
        if refused is not None:
            reason, retry = refused
            what, outcome = _refusal(record, reason)
            raise Refused(
                RefusalKind.LIMITED,
                f"app '{record.app}' is over its {what}",
                outcome,
                record.app,
                retry,
            )
        return record.app

    def _tokens_left(self, record: ApiKeyRecord) -> tuple[str, float] | None:
        if record.tokens_per_minute is None and record.tokens_per_day is None:
            return None
        return self.tokens.check(record.app, record.tokens_per_minute, record.tokens_per_day)

    def spend(self, app: str, tokens: int) -> None:
        """Count the tokens an answered request used (its usage) against the app's limits."""
        if app == "-" or tokens <= 0:
            return
        try:
            self.tokens.spend(app, tokens)
        except Exception:  # Redis down: the next admit fails closed, this answer stands
            log.warning("token usage of %s not counted", app, exc_info=True)

    def _verify(self, token: str) -> ApiKeyRecord | None:
        """The key's record from the registry, remembered ``key_ttl`` s. With the registry
        down, the last answer it gave stands for ``stale_ttl`` s more (last known good); with
        none, 503 with Retry-After: never an unchecked key."""
        digest = hash_api_key(token)
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(digest)
            if cached is not None:
                self._keys.move_to_end(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            record = self._registry().verify_api_key(token)
        except Exception as exc:
            if cached is not None and cached[1] + self.stale_ttl > now:
                return cached[0]
            log.warning("API keys cannot be checked: %s", exc)
            raise Refused(
                RefusalKind.UNAVAILABLE,
                "API keys cannot be checked right now; retry shortly",
                "unavailable",
                retry=UNAVAILABLE_RETRY_SECONDS,
            ) from exc
        with self._lock:
            self._keys[digest] = (record, now + self.key_ttl)
            self._keys.move_to_end(digest)
            while len(self._keys) > MAX_KEYS_CACHED:
                self._keys.popitem(last=False)
        return record

    def _count(self, app: str, refused: bool) -> None:
        with self._lock:
            counts = self._pending.setdefault(app, [0, 0])
            counts[1 if refused else 0] += 1

    def flush(self) -> None:
        """Add this worker's counts to the registry and learn the day's totals from it."""
        with self._lock:
            pending, self._pending = self._pending, {}
            day, self._day = self._day, today()
        if not pending and day == self._day:
            return
        registry = self._registry()
        try:
            registry.add_usage(day, {app: (c[0], c[1]) for app, c in pending.items()})
        except Exception:  # the registry may be briefly unavailable: keep the counts
            with self._lock:
                for app, (ok, refused) in pending.items():
                    counts = self._pending.setdefault(app, [0, 0])
                    counts[0] += ok
                    counts[1] += refused
            raise
        self.limiter.refresh({app: ok for app, (ok, _) in registry.usage(self._day).items()})

    def start_flushing(self, interval: float = 1.0) -> Callable[[], None]:
        """A daemon thread flushing usage every ``interval`` s; returns a stop function."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.flush()
                except Exception:
                    log.warning("usage flush failed; will retry", exc_info=True)

        thread = threading.Thread(target=run, name="conveyor-usage", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)
            try:
                self.flush()
            except Exception:
                log.debug("last usage flush failed", exc_info=True)

        return halt


def retry_after_header(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds or 1.0)))
