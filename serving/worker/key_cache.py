"""API keys as the registry last said, so that a slow or locked registry never stalls a request.

:class:`KeyCache` answers "which record is this key?" from memory while it is fresh
(``ttl`` s). Past that, a key seen before is looked up again, but a request waits at most
``refresh_wait`` s for the answer (a healthy registry answers in milliseconds, so a revocation
still takes effect within ``ttl``); when the registry is slower, or a refresh is already
running, the last record answers while the refresh goes on (for up to ``stale_ttl`` s more). A
key never seen waits for the registry at most ``lookup_timeout`` s; concurrent requests with
the same key share one lookup. Unknown keys are remembered too (a negative answer), so a flood
of one bad key is one registry read per ``ttl``. When the registry cannot answer in time,
:class:`KeysUnavailable` says so: the gate turns it into 503 with ``Retry-After``, never into a
stall and never into an unchecked key.

:class:`FailedAuthLimiter` counts failed authentications per client address, so a client
trying random keys is refused (429) before each guess costs a registry read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from conveyor.registry import ApiKeyRecord, Registry, hash_api_key

__all__ = ["FailedAuthLimiter", "KeyCache", "KeysUnavailable"]

log = logging.getLogger(__name__)
MAX_KEYS_CACHED = 10_000
MAX_PENDING_LOOKUPS = 64  # registry lookups queued at once; more are refused, not queued


class KeysUnavailable(Exception):
    """The registry did not answer in time (or failed) and nothing known stands in for it."""


class KeyCache:
    """Records per key digest with their expiry; lookups bounded in time and shared."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        ttl: float = 2.0,
        stale_ttl: float = 300.0,
        lookup_timeout: float = 2.0,
        refresh_wait: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.lookup_timeout = lookup_timeout
        self.refresh_wait = refresh_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[ApiKeyRecord | None, float]] = OrderedDict()
        self._pending: dict[str, Future[ApiKeyRecord | None]] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="conveyor-keys")

    def record(self, token: str) -> ApiKeyRecord | None:
        """The key's record, None for an unknown or revoked key, or :class:`KeysUnavailable`."""
        digest = hash_api_key(token)
        now = self._clock()
        with self._lock:
            known = self._known.get(digest)
            if known is not None:
                self._known.move_to_end(digest)
        if known is not None and known[1] > now:
            return known[0]
        stale = known is not None and known[1] + self.stale_ttl > now
        with self._lock:
            refreshing = digest in self._pending
        future = self._lookup(digest, token)
        if stale and known is not None:
            if refreshing:  # someone already waits on the registry: answer from memory
                return known[0]
            try:
                return future.result(timeout=self.refresh_wait)
            except Exception:  # slow or failing: the last record stands while it refreshes
                return known[0]
        try:
            return future.result(timeout=self.lookup_timeout)
        except FutureTimeout:
            raise KeysUnavailable(
                f"the registry did not answer in {self.lookup_timeout:g} s"
            ) from None
        except KeysUnavailable:
            raise
        except Exception as exc:
            raise KeysUnavailable(f"the registry failed: {type(exc).__name__}") from exc

    def remembered(self, token: str) -> ApiKeyRecord | None:
        """The key's last known good record (fresh or stale), without asking the registry."""
        with self._lock:
            known = self._known.get(hash_api_key(token))
        if known is None or known[1] + self.stale_ttl <= self._clock():
            return None
        return known[0]

    def _lookup(self, digest: str, token: str) -> Future[ApiKeyRecord | None]:
        with self._lock:
            pending = self._pending.get(digest)
            if pending is not None:
                return pending
            if len(self._pending) >= MAX_PENDING_LOOKUPS:
                failed: Future[ApiKeyRecord | None] = Future()
                failed.set_exception(KeysUnavailable("too many key lookups waiting"))
                return failed
            future = self._pool.submit(self._fetch, digest, token)
            self._pending[digest] = future
            return future

    def _fetch(self, digest: str, token: str) -> ApiKeyRecord | None:
        try:
            record = self._registry().verify_api_key(token)
        except Exception:
            log.warning("API keys cannot be checked right now", exc_info=True)
            raise
        finally:
            with self._lock:
                self._pending.pop(digest, None)
        with self._lock:
            self._known[digest] = (record, self._clock() + self.ttl)
            self._known.move_to_end(digest)
            while len(self._known) > MAX_KEYS_CACHED:
                self._known.popitem(last=False)
        return record

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class FailedAuthLimiter:
    """At most ``limit`` failed authentications per client address in ``window`` seconds."""

    def __init__(
        self,
        limit: int = 20,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, client: str | None) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        if client is None:
            return None
        now = self._clock()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return None
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return None
            return failures[0] + self.window - now

    def failed(self, client: str | None) -> None:
        if client is None:
            return
        with self._lock:
            failures = self._failures.setdefault(client, deque())
            self._failures.move_to_end(client)
            failures.append(self._clock())
            while len(failures) > self.limit:
                failures.popleft()
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
