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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from conveyor.registry import API_KEY_PREFIX, ApiKeyRecord, Registry
from serving.refusal import InvalidRequest, Refusal, RefusalKind
from serving.worker.key_cache import FailedAuthLimiter, KeyCache, KeysUnavailable
from serving.worker.limits import Limiter, today
from serving.worker.token_limits import LocalTokenLimiter, TokenLimiter, TokenReservation

__all__ = ["Gate", "Refused", "current_app", "retry_after_header"]

log = logging.getLogger(__name__)
T = TypeVar("T")
current_app: contextvars.ContextVar[str] = contextvars.ContextVar("conveyor_app", default="-")
UNAVAILABLE_RETRY_SECONDS = 2.0
# After the limits' store failed, it is asked again only this much later: one timeout per
# interval, and back within a second of the store.
STORE_RETRY_INTERVAL = 1.0


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
        failed_auth: FailedAuthLimiter | None = None,
    ) -> None:
        self._registry = registry
        self.deployment = deployment
        self.required = required
        self.limiter = limiter
        self.tokens: TokenLimiter = tokens or LocalTokenLimiter()
        self.keys = KeyCache(registry, ttl=key_ttl, stale_ttl=stale_ttl)
        self.failed_auth = failed_auth or FailedAuthLimiter()
        self._token_limits: dict[str, tuple[int | None, int | None]] = {}
        self._limits_down_until = 0.0
        self._may_pin: dict[str, bool] = {}
        self._settler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-tokens")
        self._lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        self._day = today()

    def admit(self, authorization: str | None, *, client: str | None = None) -> str:
        """The calling app ("-" when anonymous calls are allowed), or :class:`Refused`.
        ``client``: the caller's address, whose failed authentications are limited. A
        language-model call then reserves its tokens with :meth:`reserve_tokens`."""
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
        record = self._verify(token, client)
        if record is None:
            self.failed_auth.failed(client)
            raise Refused(RefusalKind.UNAUTHENTICATED, "unknown or revoked API key", "unauthorized")
        if self.deployment not in record.deployments and "*" not in record.deployments:
            raise Refused(
                RefusalKind.FORBIDDEN,
                f"app '{record.app}' may not call {self.deployment}",
                "forbidden",
                record.app,
            )
        self._token_limits[record.app] = (record.tokens_per_minute, record.tokens_per_day)
        self._may_pin[record.app] = record.may_pin_versions
        refused = self._ask_limits(
            "rate limits",
            record.app,
            lambda: self.limiter.take(record.app, record.rate_per_second, record.quota_per_day),
        )
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

    def may_pin(self, app: str) -> bool:
        """Whether ``app``'s key may name a version as its model rather than the deployment."""
        return self._may_pin.get(app, False)

    def reserve_tokens(self, app: str, tokens: int) -> TokenReservation | None:
        """Reserve a language-model request's most tokens (prompt + max_tokens) from its app's
        limits before it decodes; None when the app has none. A request that could never fit
        is refused with an invalid ``max_tokens`` (400), one that does not fit now with 429
        and when to retry; with the limits' store down, 503 (never unlimited)."""
        per_minute, per_day = self._token_limits.get(app, (None, None))
        if app == "-" or (per_minute is None and per_day is None):
            return None
        ceiling = min(limit for limit in (per_minute, per_day) if limit is not None)
        if tokens > ceiling:
            raise InvalidRequest(
                f"this request may use {tokens} tokens (prompt + max_tokens), more than app "
                f"'{app}' may use at all ({ceiling}): lower max_tokens or shorten the prompt",
                field="max_tokens",
                code="tokens_over_limit",
            )
        reserved = self._ask_limits(
            "token limits", app, lambda: self.tokens.reserve(app, tokens, per_minute, per_day)
        )
        if isinstance(reserved, TokenReservation):
            return reserved
        self._count(app, True)
        window = "minute" if reserved.window == "tokens_per_minute" else "day"
        raise Refused(
            RefusalKind.LIMITED,
            f"app '{app}' is over its limit of {reserved.limit} tokens per {window}: "
            f"{reserved.used} used, this request may use {tokens}",
            "tokens_limited" if window == "minute" else "quota_exceeded",
            app,
            reserved.retry_after,
        )

    def _ask_limits(self, what: str, app: str, ask: Callable[[], T]) -> T:
        """Ask the limits' store (Redis, or this worker). Fails closed: when the store errs
        or times out, 503 with Retry-After, and for a second the store is not asked at all,
        so an outage costs one timeout per interval, not one per request (a stopped Redis
        must not pile up every admission behind its socket timeout)."""
        down = Refused(
            RefusalKind.UNAVAILABLE,
            f"{what} cannot be checked right now; retry shortly",
            "unavailable",
            app,
            UNAVAILABLE_RETRY_SECONDS,
        )
        if time.monotonic() < self._limits_down_until:
            raise down
        try:
            return ask()
        except Exception as exc:  # never unlimited: refuse, and say when to retry
            self._limits_down_until = time.monotonic() + STORE_RETRY_INTERVAL
            log.warning("%s unavailable: %s", what, exc)
            raise down from exc

    def settle_tokens(self, reservation: TokenReservation | None, used: int) -> None:
        """Give back what an answered (or cancelled) request did not use. Never blocks the
        caller: the store is written from a background thread."""
        if reservation is None:
            return

        def settle() -> None:
            try:
                self.tokens.settle(reservation, used)
            except Exception:  # the store is down: the unused part stays charged
                log.warning("unused tokens of %s not given back", reservation.app, exc_info=True)

        self._settler.submit(settle)

    def _verify(self, token: str, client: str | None) -> ApiKeyRecord | None:
        """The key's record (see :class:`KeyCache`): never an unchecked key, never a stall;
        a client with too many failed keys lately is refused before another lookup."""
        wait = self.failed_auth.blocked_for(client)
        if wait is not None:
            remembered = self.keys.remembered(token)
            if remembered is not None:  # a good key from a guessing address still works
                return remembered
            raise Refused(
                RefusalKind.LIMITED,
                "too many requests with unknown keys from this address; retry later",
                "auth_limited",
                retry=wait,
            )
        try:
            return self.keys.record(token)
        except KeysUnavailable as exc:
            raise Refused(
                RefusalKind.UNAVAILABLE,
                "API keys cannot be checked right now; retry shortly",
                "unavailable",
                retry=UNAVAILABLE_RETRY_SECONDS,
            ) from exc

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
            self.keys.close()
            self._settler.shutdown(wait=True)
            thread.join(timeout=5)
            try:
                self.flush()
            except Exception:
                log.debug("last usage flush failed", exc_info=True)

        return halt


def retry_after_header(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds or 1.0)))
