"""Edge pieces without a server: rate and quota parsing, the limiters, the key gate against a
real registry, the prediction cache, body checks, and the settings that guard auth."""

from __future__ import annotations

import json
import uuid

import pytest

from conveyor.errors import ConveyorError
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.api.edge import MAX_JSON_DEPTH, check_body, parse_json
from serving.api.validation import RequestError, status_of
from serving.worker.access import Gate, Refused
from serving.worker.cache import PredictionCache
from serving.worker.limits import LocalLimiter, RedisLimiter, parse_quota, parse_rate
from testbed.live_server import port_open


def test_rates_and_quotas_parse_or_say_how() -> None:
    assert parse_rate("20/s") == 20 and parse_rate("600/min") == 10 and parse_rate("7") == 7
    assert parse_quota("100000/day") == 100000
    for bad in ("fast", "0/s", "-1/s", "3/fortnight"):
        with pytest.raises(ConveyorError, match="e.g. 20/s"):
            parse_rate(bad)
    with pytest.raises(ConveyorError, match="100000/day"):
        parse_quota("lots")


def test_local_limiter_refills_its_bucket_and_counts_the_day() -> None:
    now = [0.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    assert [limiter.take("a", 2, None) for _ in range(2)] == [None, None]
    refused = limiter.take("a", 2, None)
    assert refused is not None and refused[0] == "rate" and 0 < refused[1] <= 0.5
    now[0] += 0.5
    assert limiter.take("a", 2, None) is None
    assert limiter.take("b", None, 1) is None
    assert limiter.take("b", None, 1) is not None and limiter.take("b", None, 1)[0] == "quota"
    limiter.refresh({"c": 5})  # the registry says other workers already used c's quota
    assert limiter.take("c", None, 5) is not None


def test_gate_checks_keys_deployments_limits_and_flushes_usage(registry: Registry) -> None:
    _, shop = registry.create_api_key("shop", ["tiny"], quota_per_day=2)
    _, other = registry.create_api_key("other", ["elsewhere"])
    gate = Gate(lambda: registry, "tiny", required=True, limiter=LocalLimiter(), key_ttl=0)
    with pytest.raises(Refused) as missing:
        gate.admit(None)
    assert status_of(missing.value) == 401
    for header in ("Basic abc", "Bearer cvy_unknown"):
        with pytest.raises(Refused) as unknown:
            gate.admit(header)
        assert status_of(unknown.value) == 401
    with pytest.raises(Refused) as forbidden:
        gate.admit(f"Bearer {other}")
    assert status_of(forbidden.value) == 403 and forbidden.value.app == "other"
    assert [gate.admit(f"Bearer {shop}") for _ in range(2)] == ["shop", "shop"]
    with pytest.raises(Refused) as over:
        gate.admit(f"Bearer {shop}")
    assert status_of(over.value) == 429 and over.value.outcome == "quota_exceeded"
    assert over.value.retry_after and over.value.retry_after > 0
    gate.flush()
    assert registry.usage(next(iter(_days(registry))))["shop"] == (2, 1)
    registry.revoke_api_keys("shop")
    with pytest.raises(Refused, match="revoked"):
        gate.admit(f"Bearer {shop}")
    anonymous = Gate(lambda: registry, "tiny", required=False, limiter=LocalLimiter())
    assert anonymous.admit(None) == "-"
    # keys off: an OpenAI client's placeholder key is anonymous, a conveyor key still counts
    assert anonymous.admit("Bearer -") == anonymous.admit("Bearer sk-no-key") == "-"
    _, cafe = registry.create_api_key("cafe", ["tiny"])
    assert anonymous.admit(f"Bearer {cafe}") == "cafe"  # its limits and usage still apply
    for wrong in ("cvy_not-a-key", shop):  # mistyped, revoked: said, not passed as anonymous
        with pytest.raises(Refused, match="unknown or revoked") as refused:
            anonymous.admit(f"Bearer {wrong}")
        assert status_of(refused.value) == 401


def _days(registry: Registry) -> list[str]:
    from serving.worker.limits import today

    return [today()]


@pytest.mark.redis
def test_redis_limiter_shares_counts_between_instances() -> None:
    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    prefix = f"conveyor-test-{uuid.uuid4().hex}"
    one = RedisLimiter("redis://127.0.0.1:6379/0", prefix=prefix)
    two = RedisLimiter("redis://127.0.0.1:6379/0", prefix=prefix)
    assert one.take("app", None, 2) is None and two.take("app", None, 2) is None
    refused = one.take("app", None, 2)
    assert refused is not None and refused[0] == "quota"
    # 10 calls in well under a second span at most two one-second windows of 3 each
    rate = [(one if i % 2 else two).take("fast", 3, None) for i in range(10)]
    refused_rate = [r for r in rate if r is not None]
    assert len(refused_rate) >= 4 and all(r[0] == "rate" and r[1] <= 1 for r in refused_rate)


def test_cache_is_bounded_lru_and_keyed_by_version() -> None:
    cache = PredictionCache(2)
    cache.put_many("d:v1", 1, ["a", "b"], [{"label": "x"}, {"label": "y"}])
    assert cache.get_many("d:v2", 1, ["a"]) == [None], "another version never hits"
    assert cache.get_many("d:v1", 2, ["a"]) == [None], "another top_k never hits"
    assert cache.get_many("d:v1", 1, ["  a "]) == [{"label": "x"}], "whitespace normalized"
    cache.put_many("d:v1", 1, ["c"], [{"label": "z"}])  # evicts b, the least recently used
    assert cache.get_many("d:v1", 1, ["b", "a", "c"]) == [None, {"label": "x"}, {"label": "z"}]
    assert len(cache) == 2 and (cache.hits, cache.misses) == (3, 3)
    off = PredictionCache(0)
    off.put_many("d:v1", 1, ["a"], [{"label": "x"}])
    assert off.get_many("d:v1", 1, ["a"]) == [None] and len(off) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b'{"text": "hi"}', "text/plain", 415, None),
        (b"{", "application/json", 400, "body"),
        (b'"hi"', "application/json", 400, "body"),
        (b'{"text": true}', "application/json", 422, "text"),
        (b'{"texts": "hi"}', "application/json", 422, "texts"),
        (b'{"texts": [null]}', "application/json", 422, "texts[0]"),
        (b'{"top_k": 1.5, "text": "a"}', "application/json", 422, "top_k"),
        (b'{"text": ' + b"[" * 1000 + b"]" * 1000 + b"}", "application/json", 400, "body"),
        (b"{" * 5000, "application/json", 400, "body"),
        (b'{"texts": ' + b"[" * 900 + b"]" * 900 + b"}", "application/json", 400, "body"),
        (b'{"texts": ' + b"[" * 3 + b"]" * 3 + b"}", "application/json", 422, "texts[0]"),
    ],
)
def test_body_checks_name_the_field(
    body: bytes, content_type: str, status: int, field: str | None
) -> None:
    with pytest.raises(RequestError) as refused:
        check_body("/classify", content_type, body)
    assert (status_of(refused.value), refused.value.field) == (status, field)


def test_body_checks_accept_good_json() -> None:
    assert check_body("/classify", "application/json; charset=utf-8", b'{"text": "a"}') == {
        "text": "a"
    }


def test_a_long_list_is_refused_by_its_count_before_the_body_is_walked() -> None:
    turns = [{"role": "user", "content": "hi"}] * 5000
    body = json.dumps({"model": "m", "messages": turns}).encode()
    with pytest.raises(RequestError) as refused:
        parse_json("application/json", body, max_list_items=1024)
    assert refused.value.field == "messages" and "5000 items" in refused.value.reason
    assert parse_json("application/json", body)["messages"] == turns  # no bound asked


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_the_depth_bound_counts_containers_only(depth: int) -> None:
    nested: object = "leaf"
    for level in range(depth - 1):
        nested = [nested, 1, "x"] if level % 2 else {"a": nested, "b": None}
    body = json.dumps({"wide": [{"k": "v"}] * 3000, "deep": nested}).encode()
    if depth <= MAX_JSON_DEPTH:
        assert parse_json("application/json", body)["wide"][0] == {"k": "v"}
    else:
        with pytest.raises(RequestError, match=f"deeper than {MAX_JSON_DEPTH}"):
            parse_json("application/json", body)


def test_settings_require_keys_beyond_loopback() -> None:
    assert not Settings(serve_host="127.0.0.1").auth_required
    assert Settings(serve_host="127.0.0.1", require_api_key=True).auth_required
    assert Settings(serve_host="0.0.0.0").auth_required
    with pytest.raises(ValueError, match="required beyond loopback"):
        Settings(serve_host="0.0.0.0", require_api_key=False)
