"""The OpenAI-compatible layer's pure parts: parsing, budgets, shapes, token limits, judging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serving.api.openai.protocol import ApiError, parse_request
from serving.api.openai.responses import chunk, completion_body, error_body, models_body, sse
from serving.api.openai.serving import cache_key, check_budget
from serving.api.validation import status_of
from serving.canary.judge import CanaryThresholds, Decision, judge_canary
from serving.canary.stats import VersionStats
from serving.engine.params import TokenEvent
from serving.refusal import RefusalKind
from serving.worker.access import Refused
from serving.worker.token_limits import LocalTokenLimiter, TokenReservation, TokensRefused

pytestmark = pytest.mark.unit
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def _refused(kind: Any, body: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        parse_request(kind, body)
    assert status_of(refused.value) == 400
    return refused.value


def test_a_chat_request_is_parsed_with_openai_defaults_and_aliases() -> None:
    parts = [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]
    request = parse_request(
        "chat",
        CHAT
        | {
            "messages": [{"role": "developer", "content": parts}, CHAT["messages"][0]],
            "max_completion_tokens": 9,
            "stop": "\n",
            "stream": True,
            "stream_options": {"include_usage": True},
            "n": 1,
            "user": "u1",
        },
    )
    assert request.messages == (("system", "be brief"), ("user", "hi"))
    assert (request.max_tokens, request.stop, request.temperature) == (9, ("\n",), 1.0)
    assert request.stream and request.include_usage and not request.greedy
    completion = parse_request("completion", {"model": "m", "prompt": ["one"], "temperature": 0})
    assert completion.prompt == "one" and completion.greedy and completion.max_tokens is None


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("chat", {"messages": CHAT["messages"]}, "model"),
        ("chat", CHAT | {"n": 2}, "n"),
        ("chat", CHAT | {"colour": "red"}, "colour"),
        ("chat", CHAT | {"prompt": "x"}, "prompt"),
        ("chat", CHAT | {"messages": []}, "messages"),
        ("chat", CHAT | {"messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ("chat", CHAT | {"max_tokens": 0}, "max_tokens"),
        ("chat", CHAT | {"max_tokens": True}, "max_tokens"),
        ("chat", CHAT | {"temperature": 2.5}, "temperature"),
        ("chat", CHAT | {"top_p": 0}, "top_p"),
        ("chat", CHAT | {"stop": ["a", ""]}, "stop"),
        ("chat", CHAT | {"stop": list("abcde")}, "stop"),
        ("chat", CHAT | {"stream_options": {"include_usage": True}}, "stream_options"),
        ("chat", CHAT | {"logprobs": True}, "logprobs"),
        ("chat", CHAT | {"presence_penalty": 0.5}, "presence_penalty"),
        ("completion", {"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ("completion", {"model": "m"}, "prompt"),
        ("completion", [1, 2], "body"),
    ],
)
def test_invalid_requests_are_400_naming_the_param(kind: Any, body: Any, param: str) -> None:
    refused = _refused(kind, body)
    assert refused.field == param
    shape = error_body(refused)["error"]
    assert shape["type"] == "invalid_request_error" and shape["param"] == param
    assert set(shape) == {"message", "type", "param", "code"}


def test_n_above_one_says_so() -> None:
    assert "one choice" in _refused("chat", CHAT | {"n": 3}).reason


def test_the_budget_is_capped_by_the_version_and_the_context_naming_both_numbers() -> None:
    request = parse_request("chat", CHAT | {"max_tokens": 100})
    assert check_budget(request, 20, cap=128, context=512) == 100
    unset = parse_request("chat", CHAT)
    assert check_budget(unset, 20, cap=128, context=512) == 128
    assert check_budget(unset, 500, cap=128, context=512) == 12
    with pytest.raises(ApiError) as capped:
        check_budget(parse_request("chat", CHAT | {"max_tokens": 200}), 5, cap=128, context=512)
    assert "200" in capped.value.reason and "128" in capped.value.reason
    assert capped.value.field == "max_tokens"
    with pytest.raises(ApiError) as over:
        check_budget(request, 450, cap=128, context=512)
    assert over.value.code == "context_length_exceeded" and over.value.field == "messages"
    assert all(str(n) in over.value.reason for n in (512, 450, 100, 550))


def test_greedy_answers_are_keyed_by_the_whole_normalized_request() -> None:
    one = parse_request("chat", CHAT | {"temperature": 0})
    renamed = parse_request("chat", CHAT | {"temperature": 0, "model": "chat:v2", "user": "x"})
    longer = parse_request("chat", CHAT | {"temperature": 0, "max_tokens": 5})
    assert cache_key(one, 8) == cache_key(renamed, 8)
    assert cache_key(one, 8) != cache_key(longer, 5) != cache_key(one, 9)
    spaced = parse_request("chat", CHAT | {"messages": [{"role": "user", "content": "hi "}]})
    assert cache_key(one, 8) != cache_key(spaced, 8)  # whitespace is tokens


def test_answer_chunk_and_usage_shapes() -> None:
    last = TokenEvent("", 3, 7, "length")
    body = completion_body("chat", "chatcmpl-1", 5, "chat:v2", "abc", last)
    assert body["object"] == "chat.completion" and body["system_fingerprint"] == "chat:v2"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "abc"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    text = completion_body("completion", "cmpl-1", 5, "v", "abc", last)
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "abc"

    first = chunk("chat", "c", 5, "v", text="", role=True, with_usage=True)
    assert first["object"] == "chat.completion.chunk" and first["usage"] is None
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    end = chunk("chat", "c", 5, "v", finish_reason="stop")
    assert end["choices"][0]["delta"] == {} and end["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in end
    counted = chunk("chat", "c", 5, "v", counts=(7, 3))
    assert counted["choices"] == [] and counted["usage"]["total_tokens"] == 10
    assert chunk("completion", "c", 5, "v", text="x")["choices"][0]["text"] == "x"
    assert sse({"a": "é"}) == 'data: {"a": "é"}\n\n'.encode()


def test_models_list_and_refusal_shapes() -> None:
    listed = models_body("chat", ["chat:v2", "chat:v1"], 5)
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == [
        "chat",
        "chat:v2",
        "chat:v1",
    ]
    assert error_body(Refused(RefusalKind.UNAUTHENTICATED, "bad key", "unauthorized"))["error"] == {
        "message": "bad key",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
    limited = error_body(Refused(RefusalKind.LIMITED, "over", "tokens_limited", "shop", 3.0))[
        "error"
    ]
    assert (limited["type"], limited["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert (
        error_body(Refused(RefusalKind.LIMITED, "day", "quota_exceeded"))["error"]["code"]
        == "insufficient_quota"
    )


def test_token_reservations_per_minute_and_day_take_all_or_nothing_then_say_when() -> None:
    now = [120.0 + 45]  # 45 s into a minute
    limiter = LocalTokenLimiter(clock=lambda: now[0])
    first = limiter.reserve("shop", 60, 100, None)
    assert isinstance(first, TokenReservation)
    refused = limiter.reserve("shop", 60, 100, None)  # 60 + 60 > 100: nothing taken
    assert isinstance(refused, TokensRefused) and refused.window == "tokens_per_minute"
    assert (refused.limit, refused.used) == (100, 60)
    assert refused.retry_after == pytest.approx(15.0)
    assert isinstance(limiter.reserve("shop", 40, 100, None), TokenReservation)  # exactly fits
    assert isinstance(limiter.reserve("other", 100, 100, None), TokenReservation)  # per app
    limiter.settle(first, 20)  # the answer used 20 of its 60: 40 come back
    assert isinstance(limiter.reserve("shop", 40, 100, None), TokenReservation)
    assert isinstance(limiter.reserve("shop", 1, 100, None), TokensRefused)
    now[0] += 15  # the next minute
    assert isinstance(limiter.reserve("shop", 100, 100, None), TokenReservation)
    day = limiter.reserve("shop", 1, None, 120)
    assert isinstance(day, TokensRefused) and day.window == "tokens_per_day"
    assert isinstance(limiter.reserve("shop", 10**9, None, None), TokenReservation)


def test_a_generative_canary_is_judged_on_its_time_to_first_token() -> None:
    slow = VersionStats()
    for _ in range(30):
        slow.observe(900.0, failed=False)
    limits = CanaryThresholds(0.05, 500.0, 20, measure="time to first token")
    now = datetime.now(UTC)
    verdict = judge_canary(slow, limits, now, now + timedelta(seconds=60))
    assert verdict.decision == Decision.ROLL_BACK
    assert "p99 time to first token 1000 ms over max_p99_latency_ms 500 ms" in verdict.reason
    assert verdict.figures["measure"] == "time to first token"
    failing = VersionStats()
    for i in range(30):
        failing.observe(10.0, failed=i < 3)
    verdict = judge_canary(failing, limits, now, now + timedelta(seconds=60))
    assert verdict.decision == Decision.ROLL_BACK and "error rate 10.0%" in verdict.reason


def test_a_key_with_token_limits_reserves_before_decoding_and_settles_after(
    registry: Any,
) -> None:
    from serving.refusal import InvalidRequest
    from serving.worker.access import Gate
    from serving.worker.limits import LocalLimiter

    record, key = registry.create_api_key(
        "shop", ["chat"], tokens_per_minute=40, tokens_per_day=1000
    )
    assert (record.tokens_per_minute, record.tokens_per_day) == (40, 1000)
    assert registry.verify_api_key(key).tokens_per_minute == 40
    gate = Gate(lambda: registry, "chat", required=True, limiter=LocalLimiter())
    assert gate.admit(f"Bearer {key}") == "shop"
    with pytest.raises(InvalidRequest) as never:  # could never fit: the request's fault
        gate.reserve_tokens("shop", 41)
    assert status_of(never.value) == 400 and never.value.field == "max_tokens"
    assert "41 tokens" in never.value.reason and "(40)" in never.value.reason
    held = gate.reserve_tokens("shop", 30)
    assert held is not None
    with pytest.raises(Refused) as refused:
        gate.reserve_tokens("shop", 20)
    assert status_of(refused.value) == 429 and refused.value.outcome == "tokens_limited"
    assert "40 tokens per minute: 30 used, this request may use 20" in refused.value.reason
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 60
    gate.settle_tokens(held, 12)  # 18 unused come back (from a background thread)
    gate._settler.shutdown(wait=True)
    assert gate.reserve_tokens("shop", 20) is not None
    assert gate.reserve_tokens("-", 10**6) is None  # anonymous: no token limits


def test_a_burst_of_reservations_never_overshoots_the_limit() -> None:
    from concurrent.futures import ThreadPoolExecutor

    limiter = LocalTokenLimiter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: limiter.reserve("shop", 50, 200, None), range(30)))
    granted = [r for r in results if isinstance(r, TokenReservation)]
    assert len(granted) == 4 and sum(r.tokens for r in granted) == 200


def test_hostile_bodies_are_400s_naming_the_field_without_echoing_them() -> None:
    import json

    from serving.api.edge import parse_json
    from serving.api.openai.serving import check_prompt_chars
    from serving.api.validation import RequestError

    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        ({"model": "chat", "prompt": "a\ud800b"}, "completion", "prompt"),
        (chat | {"messages": [{"role": "user", "content": "\udfff"}]}, "chat", "messages"),
        (chat | {"stop": ["ok", "\ud800"]}, "chat", "stop"),
        (chat | {"max_tokens": "lots", "max_completion_tokens": 4}, "chat", "max_tokens"),
        (chat | {"messages": [{"role": "user", "content": "x"}] * 5000}, "chat", "messages"),
        (chat | {"stop": ["s"] * 500}, "chat", "stop"),
        (chat | {"temperature": "x" * 100_000}, "chat", "temperature"),
    ]
    for body, kind, field in cases:
        with pytest.raises(ApiError) as refused:
            parse_request(kind, body)  # type: ignore[arg-type]
        assert status_of(refused.value) == 400 and refused.value.field == field, body.keys()
        assert len(refused.value.reason) < 300, "a refusal never echoes the body back"
    for levels, says in ((960, "too deeply"), (100, "deeper than 32")):
        nested = ("[" * levels + "]" * levels).encode()
        with pytest.raises(RequestError) as deep:
            parse_json("application/json", b'{"model": "chat", "messages": ' + nested + b"}")
        assert status_of(deep.value) == 400 and says in deep.value.reason
    with pytest.raises(RequestError) as bad:
        parse_json("application/json", b'{"model": }')
    assert "line 1 column 11" in bad.value.reason and "Expecting" not in bad.value.reason
    huge = parse_request("completion", {"model": "chat", "prompt": "word " * 190_000})
    with pytest.raises(ApiError) as too_long:  # refused before any tokenizing
        check_prompt_chars(huge, context=512)
    assert too_long.value.code == "context_length_exceeded" and "950000" in too_long.value.reason
    check_prompt_chars(parse_request("chat", json.loads(json.dumps(chat))), context=512)
