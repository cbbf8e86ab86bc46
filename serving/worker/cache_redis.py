"""The prediction cache shared by every worker and replica of a deployment, in Redis.

Keys are ``<prefix>:cache:<registry>:{<deployment>}:<version>:<top_k>:<sha256 of the
normalized text>`` and values the answer as JSON, signed: ``{"a": answer, "s": HMAC-SHA256}``
over the key (deployment, version, request) and the answer, with the server's secret
(``Settings.cache_signing_key``). Whoever else can write to Redis cannot plant an answer,
nor move one to another version or request: a value whose signature fails is a miss, counted
as an error and logged. The version is in every key, so a promotion
or rollback can never serve another version's answer (as in :mod:`serving.worker.cache`); the
registry part (:func:`registry_namespace`) keeps two registries that both number a ``tiny:v1``
(a fresh dev home, a test) from reading each other's answers in one Redis. The braces are a
Redis Cluster hash tag: a deployment's entries and its index share one slot.

Bounded twice: every entry expires after ``ttl`` seconds, and a deployment keeps at most
``max_entries``. The bound is a sorted set per deployment (``...:{<deployment>}:index``) of
entry keys scored by Redis's own clock at write time; one Lua script per write sets the
entries with their TTL, indexes them, drops index members past the TTL and deletes the oldest
written entries over the bound. A script rather than a pipeline: trimming must delete the
entries it evicts, which a pipeline cannot name without a second round trip, and the script
is atomic, so two workers trimming at once never leave an entry outside the index. Eviction
is by write time (rewriting an answer refreshes it; reading does not, to keep lookups reads).

A request costs at most one round trip per lookup (MGET) and one per write (EVALSHA). A small
LRU in this worker (tier 1, keyed like the local cache, version included) answers hot texts
with no round trip at all. Redis down or slow never fails a request: a lookup error is a
miss, a write error is dropped, both are logged at WARNING at most once per ``warn_every``
seconds, and for ``retry_after`` seconds after an error Redis is not asked at all (tier 1
still answers), so an outage costs one socket timeout per interval, not one per request.
Calls are synchronous, on the event loop like the Redis limiter's: a loopback MGET is well
under a millisecond, and a slow Redis holds the loop at most ``timeout`` (0.25 s: a lookup
slower than that costs more than the miss it saves) per ``retry_after``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from serving.worker.cache import PredictionCache, normalize

__all__ = ["RedisPredictionCache", "registry_namespace", "seal", "unseal"]

log = logging.getLogger(__name__)

# KEYS[1] the index, KEYS[2..] entries; ARGV[1] ttl s, ARGV[2] bound, ARGV[3..] values (JSON)
_WRITE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local ttl = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
  redis.call('ZADD', KEYS[1], t, KEYS[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - ttl)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
while over > 0 do
  local old = redis.call('ZRANGE', KEYS[1], 0, math.min(over, 1000) - 1)
  redis.call('DEL', unpack(old))
  redis.call('ZREM', KEYS[1], unpack(old))
  over = over - #old
end
redis.call('EXPIRE', KEYS[1], ttl)
return 0
"""


def registry_namespace(registry_url: str) -> str:
    """12 hex digits of the registry URL's SHA-256, password left out (rotating it keeps them)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(registry_url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL the registry could open either; still a stable name
        shown = registry_url
    return hashlib.sha256(shown.encode()).hexdigest()[:12]


def _signature(secret: bytes, key: str, answer_json: str) -> str:
    return hmac.new(secret, f"{key}\n{answer_json}".encode(), hashlib.sha256).hexdigest()


def seal(secret: bytes, key: str, answer: dict[str, Any]) -> str:
    """The stored value: the answer and its signature over the key and the answer."""
    answer_json = json.dumps(answer, separators=(",", ":"), sort_keys=True)
    return json.dumps({"a": answer, "s": _signature(secret, key, answer_json)})


def unseal(secret: bytes, key: str, value: bytes | str | None) -> dict[str, Any] | None | bool:
    """The answer stored under ``key``; None when there is none or it is in another format;
    False when it is signed wrongly (planted, or moved from another key)."""
    if value is None:
        return None
    try:
        stored = json.loads(value)
    except ValueError:
        return None
    if not isinstance(stored, dict):
        return None
    if not isinstance(stored.get("a"), dict):
        return False
    answer_json = json.dumps(stored["a"], separators=(",", ":"), sort_keys=True)
    expected = _signature(secret, key, answer_json)
    if not hmac.compare_digest(expected, str(stored.get("s", ""))):
        return False
    answer: dict[str, Any] = stored["a"]
    return answer


class RedisPredictionCache:
    """At most ``max_entries`` answers per deployment in Redis for ``ttl`` s; 0 turns it off.

    ``hits``, ``misses`` and ``errors`` count this worker's lookups (tier 1 hits included);
    ``len()`` is the shared count, the entries in the deployment's index (0 when Redis cannot
    be reached).
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        deployment: str,
        max_entries: int,
        *,
        ttl: int = 86_400,
        local_entries: int = 1024,
        namespace: str = "-",
        secret: bytes,
        prefix: str = "conveyor",
        timeout: float = 0.25,
        retry_after: float = 5.0,
        warn_every: float = 60.0,
    ) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._write = self._redis.register_script(_WRITE)
        self.max_entries = max_entries
        self.ttl = ttl
        self._secret = secret
        self._keys = f"{prefix}:cache:{namespace}:{{{deployment}}}"
        self._local = PredictionCache(min(local_entries, max_entries))
        self._retry_after, self._warn_every = retry_after, warn_every
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._warned_at = -float("inf")
        self._unreported = 0
        self.hits = self.misses = self.errors = 0

    def key(self, version: str, top_k: int, text: str) -> str:
        digest = hashlib.sha256(normalize(text).encode()).hexdigest()
        return f"{self._keys}:{version}:{top_k}:{digest}"

    @property
    def index_key(self) -> str:
        return f"{self._keys}:index"

    def __len__(self) -> int:
        if self.max_entries == 0 or not self._reachable():
            return 0
        try:
            return int(self._redis.zcard(self.index_key))
        except Exception as exc:  # a status view must not fail either
            self._failed("count", exc)
            return 0

    def get_many(self, version: str, top_k: int, texts: list[str]) -> list[dict[str, Any] | None]:
        """The cached answer for each text (tier 1, then one MGET), or None to compute it."""
        if self.max_entries == 0:
            return [None] * len(texts)
        found = self._local.get_many(version, top_k, texts)
        missing = [i for i, answer in enumerate(found) if answer is None]
        if missing and self._reachable():
            keys = [self.key(version, top_k, texts[i]) for i in missing]
            try:
                raw = self._redis.mget(keys)
            except Exception as exc:  # Redis down or slow: a miss, never a failure
                self._failed("lookup", exc)
            else:
                for i, key, value in zip(missing, keys, raw, strict=True):
                    answer = unseal(self._secret, key, value)
                    if answer is False:
                        self._forged(key)
                    found[i] = answer if isinstance(answer, dict) else None
            fetched = {texts[i]: answer for i in missing if (answer := found[i]) is not None}
            if fetched:
                self._local.put_many(version, top_k, list(fetched), list(fetched.values()))
        hits = sum(answer is not None for answer in found)
        with self._lock:
            self.hits += hits
            self.misses += len(found) - hits
        return found

    def put_many(
        self, version: str, top_k: int, texts: list[str], answers: list[dict[str, Any]]
    ) -> None:
        """Keep the answers in tier 1 and, in one script call, in Redis (errors are dropped)."""
        if self.max_entries == 0 or not texts:
            return
        self._local.put_many(version, top_k, texts, answers)
        if not self._reachable():
            return
        keys = [self.key(version, top_k, text) for text in texts]
        values = [
            seal(self._secret, key, answer) for key, answer in zip(keys, answers, strict=True)
        ]
        try:
            self._write(keys=[self.index_key, *keys], args=[self.ttl, self.max_entries, *values])
        except Exception as exc:  # the answer is already on its way to the caller
            self._failed("write", exc)

    def _forged(self, key: str) -> None:
        with self._lock:
            self.errors += 1
        log.warning("prediction cache: %s holds an answer not signed by this server: ignored", key)

    def _reachable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self._unreported += 1
            self._down_until = now + self._retry_after
            if now - self._warned_at < self._warn_every:
                return
            self._warned_at, count, self._unreported = now, self._unreported, 0
        log.warning(
            "prediction cache: Redis %s failed (%d error(s) since the last warning; answering "
            "from the model, not asking Redis for %.0f s): %s",
            what,
            count,
            self._retry_after,
            exc,
        )
