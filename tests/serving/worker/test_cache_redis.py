"""The prediction cache shared through Redis: two instances stand for two workers (or replicas).

Against the machine's Redis on 127.0.0.1:6379 (skips with the reason when absent), each test
under its own key prefix, deleted afterwards; the dead-Redis tests point at a closed port.
"""

from __future__ import annotations

import http.client
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from serving.worker.cache import PredictionCache
from serving.worker.cache_redis import RedisPredictionCache, registry_namespace
from testbed.live_server import port_open, running_server
from testbed.versions import make_version

URL = "redis://127.0.0.1:6379/0"
DEAD = "redis://127.0.0.1:1/0"
SECRET = b"the test server's signing key"
X, Y, Z = {"label": "x", "score": 0.9}, {"label": "y", "score": 0.5}, {"label": "z", "score": 0.1}


def delete_matching(pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(match=pattern))
    if keys:
        client.delete(*keys)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    prefix = f"conveyor-test-{uuid.uuid4().hex}"
    yield prefix
    delete_matching(f"{prefix}:*")


@pytest.fixture
def raw() -> Any:
    import redis

    return redis.Redis.from_url(URL)


def worker(prefix: str, max_entries: int = 100, **kwargs: Any) -> RedisPredictionCache:
    kwargs.setdefault("secret", SECRET)
    return RedisPredictionCache(URL, "tiny", max_entries, prefix=prefix, **kwargs)


@pytest.mark.redis
def test_two_workers_share_answers(prefix: str) -> None:
    one, two = worker(prefix), worker(prefix)
    assert one.get_many("tiny:v1", 1, ["a", "b"]) == [None, None]
    one.put_many("tiny:v1", 1, ["a", "b"], [X, Y])
    assert two.get_many("tiny:v1", 1, ["b", "  a ", "c"]) == [Y, X, None], "normalized text"
    assert (two.hits, two.misses, two.errors) == (2, 1, 0)
    assert len(one) == len(two) == 2, "len() is the shared count"


@pytest.mark.redis
def test_another_version_or_top_k_never_hits(prefix: str) -> None:
    one, two = worker(prefix), worker(prefix)
    one.put_many("tiny:v1", 1, ["a"], [X])
    assert one.get_many("tiny:v2", 1, ["a"]) == [None], "tier 1 is version-keyed"
    assert two.get_many("tiny:v2", 1, ["a"]) == [None], "so is Redis"
    assert two.get_many("tiny:v1", 3, ["a"]) == [None], "top_k is in the key"
    two.put_many("tiny:v2", 1, ["a"], [Y])
    assert one.get_many("tiny:v1", 1, ["a"]) == [X] and two.get_many("tiny:v2", 1, ["a"]) == [Y]


@pytest.mark.redis
def test_the_bound_trims_the_oldest_written_and_deletes_it(prefix: str, raw: Any) -> None:
    cache = worker(prefix, max_entries=3, local_entries=0)  # no tier 1: every lookup asks Redis
    for text in ("a", "b", "c", "d"):
        cache.put_many("tiny:v1", 1, [text], [X])
    assert cache.get_many("tiny:v1", 1, ["a", "b", "c", "d"]) == [None, X, X, X]
    assert len(cache) == 3 and raw.zcard(cache.index_key) == 3
    assert not raw.exists(cache.key("tiny:v1", 1, "a")), "the evicted entry is gone, not orphaned"
    cache.put_many("tiny:v1", 1, ["b"], [X])  # rewriting refreshes b: c is now the oldest
    cache.put_many("tiny:v1", 1, ["e"], [X])
    assert cache.get_many("tiny:v1", 1, ["b", "c", "d", "e"]) == [X, None, X, X]


@pytest.mark.redis
def test_every_entry_and_the_index_expire(prefix: str, raw: Any) -> None:
    cache = worker(prefix, ttl=60)
    cache.put_many("tiny:v1", 2, ["a"], [X])
    key = cache.key("tiny:v1", 2, "a")
    assert key.startswith(f"{prefix}:cache:-:{{tiny}}:tiny:v1:2:") and len(key.split(":")[-1]) == 64
    assert 0 < raw.ttl(key) <= 60 and 0 < raw.ttl(cache.index_key) <= 60


@pytest.mark.redis
def test_two_registries_never_share_answers(prefix: str) -> None:
    here = worker(prefix, namespace=registry_namespace("sqlite:////a/registry.db"))
    there = worker(prefix, namespace=registry_namespace("sqlite:////b/registry.db"))
    here.put_many("tiny:v1", 1, ["a"], [X])
    assert there.get_many("tiny:v1", 1, ["a"]) == [None], "another registry's tiny:v1"
    assert registry_namespace("postgresql://u:old@db/conveyor") == registry_namespace(
        "postgresql://u:new@db/conveyor"
    ), "a password rotation keeps the cache"


@pytest.mark.redis
def test_junk_in_redis_is_a_miss(prefix: str, raw: Any) -> None:
    cache = worker(prefix, local_entries=0)
    raw.set(cache.key("tiny:v1", 1, "a"), b"not json")
    raw.set(cache.key("tiny:v1", 1, "b"), b"[1, 2]")
    cache.put_many("tiny:v1", 1, ["c"], [X])
    assert cache.get_many("tiny:v1", 1, ["a", "b", "c"]) == [None, None, X]
    assert cache.errors == 0, "junk is a miss, not a reason to stop asking Redis"


@pytest.mark.redis
def test_an_answer_planted_or_moved_in_redis_is_never_served(prefix: str, raw: Any) -> None:
    cache = worker(prefix, local_entries=0)
    planted = {"label": "send your card number to evil.example", "score": 1.0}
    raw.set(cache.key("tiny:v1", 1, "a"), json.dumps(planted))  # the old, unsigned format
    raw.set(cache.key("tiny:v1", 1, "b"), json.dumps({"a": planted, "s": "0" * 64}))
    cache.put_many("tiny:v1", 1, ["c"], [X])
    signed_for_c = raw.get(cache.key("tiny:v1", 1, "c"))
    raw.set(cache.key("tiny:v2", 1, "c"), signed_for_c)  # moved to another version
    other_key = worker(prefix, local_entries=0, secret=b"another server")
    other_key.put_many("tiny:v1", 1, ["d"], [Y])  # signed, but not with this server's key
    got = cache.get_many("tiny:v1", 1, ["a", "b", "c", "d"]) + cache.get_many("tiny:v2", 1, ["c"])
    assert got == [None, None, X, None, None]
    assert cache.errors == 4, "each forged answer is counted"


def test_dead_redis_gives_misses_not_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisPredictionCache(DEAD, "tiny", 100, retry_after=0, secret=SECRET)
    with caplog.at_level(logging.WARNING, logger="serving.worker.cache_redis"):
        assert cache.get_many("tiny:v1", 1, ["a", "b"]) == [None, None]
        cache.put_many("tiny:v1", 1, ["a"], [X])
        assert cache.get_many("tiny:v1", 1, ["a", "b"]) == [X, None], "tier 1 still answers"
        assert len(cache) == 0
    assert cache.errors == 4 and (cache.hits, cache.misses) == (1, 3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per interval, not one per request"


def test_after_an_error_redis_is_left_alone_for_a_while() -> None:
    cache = RedisPredictionCache(DEAD, "tiny", 100, retry_after=60, secret=SECRET)
    for text in "abcde":
        assert cache.get_many("tiny:v1", 1, [text]) == [None]
        cache.put_many("tiny:v1", 1, [text], [Z])
    assert cache.errors == 1 and cache.misses == 5


def test_size_zero_turns_it_off_without_asking_redis() -> None:
    cache = RedisPredictionCache(DEAD, "tiny", 0, secret=SECRET)
    cache.put_many("tiny:v1", 1, ["a"], [X])
    assert cache.get_many("tiny:v1", 1, ["a"]) == [None] and len(cache) == 0
    assert cache.errors == 0


def test_the_backend_follows_redis_url_unless_set() -> None:
    from serving.worker.runtime import _cache

    assert Settings().cache_kind == "local"
    assert isinstance(_cache(Settings(), "tiny"), PredictionCache)
    shared = Settings(redis_url=DEAD, cache_ttl_seconds=30)
    assert shared.cache_kind == "redis"
    cache = _cache(shared, "tiny")
    assert isinstance(cache, RedisPredictionCache) and cache.ttl == 30
    assert Settings(redis_url=DEAD, cache_backend="local").cache_kind == "local"
    with pytest.raises(ValueError, match="CONVEYOR_CACHE_BACKEND=redis needs CONVEYOR_REDIS_URL"):
        Settings(cache_backend="redis")


@pytest.mark.redis
@pytest.mark.integration
def test_two_server_workers_share_the_cache(
    prefix: str, registry: Registry, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `bentoml serve` with 2 workers: a batch computed by one is a hit for the other."""
    monkeypatch.setenv("CONVEYOR_REDIS_URL", URL)
    settings = Settings()
    assert settings.cache_kind == "redis"
    version = make_version(registry, settings, tokenizer, 0)
    promote(registry, version, canary_percent=0, timeout=5)
    body = json.dumps({"texts": ["set a timer", "translate hello", "define  word"], "top_k": 2})
    workers: dict[int, dict[str, Any]] = {}
    try:
        with running_server(settings, workers=2) as server:
            for _ in range(60):  # until both workers answered (connections go to either)
                assert _call(server.port, "/classify", body)["version"] == version
                for _ in range(4):
                    status = _call(server.port, "/v1/status")
                    workers[status["worker"]] = status["cache"]
                if len(workers) == 2 and all(c["hits"] + c["misses"] for c in workers.values()):
                    break
    finally:  # the service's own prefix, under this test registry's namespace
        delete_matching(f"conveyor:cache:{registry_namespace(settings.registry_url)}:*")
    assert len(workers) == 2 and all(c["hits"] + c["misses"] for c in workers.values()), workers
    assert all(c["backend"] == "redis" for c in workers.values())
    assert sum(c["misses"] for c in workers.values()) == 3, workers  # computed once, not twice
    assert all(c["errors"] == 0 and c["entries"] == 3 for c in workers.values()), workers


def _call(port: int, path: str, body: str | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    conn.request("GET" if body is None else "POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    assert response.status == 200, data
    return dict(data)
