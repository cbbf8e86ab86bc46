"""The fault table's rows for the OpenAI routes (issue 23), against a real ``bentoml serve``
of a tiny random Llama.

Clients (``testbed.chat_traffic``) send a different E2E NLG prompt each request, a third of
them streamed; a stream is answered only when it ends with ``data: [DONE]``. Each test
injects one fault for real (hostile clients beside ordinary ones, its own Redis stopped or
killed, a second SQLite connection holding the registry's write lock, its own PostgreSQL
restarted, a worker killed mid-stream, an adapter promoted and rolled back) and counts every
answer: none may be lost, and the ordinary clients beside a hostile one are all answered.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.canary.bake import live_workers
from serving.control.rollout import promote, rollback
from testbed.adapter_traffic import make_adapter, register_adapter
from testbed.chat_traffic import ChatRequest, ChatTraffic, e2e_prompts, tokens_used, varied_openai
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.services import own_postgres, own_redis
from testbed.tiny_models import write_tiny_llama
from testbed.traffic import Answer, count
from testbed.versions import DEPLOYMENT, register_llm

pytestmark = [pytest.mark.integration, pytest.mark.faults]
CHAT = "/v1/chat/completions"


@pytest.fixture
def llama(tmp_path: Path, smollm2_tokenizer_dir: Path) -> Path:
    return write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)


@pytest.fixture
def llm(registry: Registry, settings: Settings, llama: Path) -> str:
    return register_llm(registry, settings, llama)


def _failures(answers: list[Answer]) -> list[tuple[int, bool, float, bytes]]:
    return [
        (a.status, a.retried, round(a.seconds, 2), a.body[:100])
        for a in answers
        if not 200 <= a.status < 300
    ]


def _all_ok(answers: list[Answer]) -> bool:
    return bool(answers) and count(answers).ok == len(answers)


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_varied_chat_and_streamed_traffic_loses_nothing(
    settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    with (
        running_server(settings) as server,
        ChatTraffic(server.port, 8, varied_openai(drop_every=3)) as traffic,
    ):
        time.sleep(8.0)
        figures = server.status()["figures"][llm]
    answers = traffic.answers
    row = fault_table.add(
        "varied chat and streamed traffic",
        "8 clients, a new E2E prompt each; a third streamed, every third stream dropped "
        "by its client after two chunks",
        answers,
        dropped_by_client=len(traffic.dropped),
    )
    assert row["lost"] == 0 and _failures(answers) == []
    assert row["ok"] == row["sent"] > 100
    streamed = [a for a in answers if a.body.startswith(b"data:")]
    plain = [a for a in answers if a.body.startswith(b"{")]
    assert streamed and plain and traffic.dropped, "plain, streamed and dropped requests"
    assert any(b'"text_completion"' in a.body for a in plain), "both routes"
    assert figures["errors"] == 0


POISON: tuple[dict[str, Any], ...] = (
    {"temperature": 1.5406077321390436e-38},  # once failed whole batches: greedy now
    {"temperature": 5e-324},
    {"temperature": 1e-3, "seed": 2**64 - 1},
    {"temperature": 2.0, "top_p": 1e-300, "seed": -(2**63)},
    {"temperature": 1.0, "seed": 2**64},  # beyond torch's range: 400
    {"temperature": float("nan")},  # non-finite: 400
    {"temperature": float("inf")},
    {"top_p": -0.0},
    {"stop": ["\ud800"]},  # a lone surrogate: 400
    {"max_tokens": 0},
)


def _poisoning(client: int, index: int) -> ChatRequest:
    prompts = e2e_prompts()
    text = prompts[(client * 577 + index) % len(prompts)]
    fields = {"max_tokens": 8, **POISON[index % len(POISON)]}
    body = {"model": DEPLOYMENT, "messages": [{"role": "user", "content": text}], **fields}
    if index % 3 == 2:
        body["stream"] = True
    return ChatRequest(CHAT, json.dumps(body).encode())  # NaN and Infinity, as sent raw


def _beside(
    port: int, hostile: Any, clients: int, seconds: float, headers: dict[str, str] | None = None
) -> tuple[ChatTraffic, ChatTraffic]:
    """``clients`` sending ``hostile`` beside 4 ordinary clients, for ``seconds``."""
    with (
        ChatTraffic(port, 4, varied_openai(headers)) as ordinary,
        ChatTraffic(port, clients, hostile) as faulty,
    ):
        time.sleep(seconds)
    return ordinary, faulty


def test_a_poisoning_client_fails_only_itself(
    settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    with running_server(settings) as server:
        ordinary, poison = _beside(server.port, _poisoning, clients=4, seconds=6.0)
        figures = server.status()["figures"][llm]
    row = fault_table.add(
        "poisoning client",
        "4 clients sending 1.5e-38 and subnormal temperatures, a 1e-300 top_p, edge and "
        "out-of-range seeds, NaN, inf, a lone surrogate, beside 4 ordinary clients",
        ordinary.answers + poison.answers,
    )
    assert row["lost"] == 0, _failures(poison.answers)[:5]
    assert _all_ok(ordinary.answers), _failures(ordinary.answers)[:5]
    statuses = {a.status for a in poison.answers}
    assert statuses == {200, 400}, statuses
    assert figures["errors"] == 0, "a poisoning request is never the version's error"


def _hostile_body(index: int, text: str) -> bytes:
    """One of six hostile bodies, in turn (text: an E2E prompt)."""
    kind = index % 6
    body: dict[str, Any] = {"model": DEPLOYMENT, "messages": [{"role": "user", "content": text}]}
    if kind == 0:  # a 100 KB prompt
        body["messages"][0]["content"] = (text + " ") * (100_000 // (len(text) + 1))
    elif kind == 1:  # 5,000 messages (short ones: the count is refused, not the size)
        roles = ("user", "assistant")
        body["messages"] = [{"role": roles[i % 2], "content": text[-60:]} for i in range(5000)]
    elif kind == 2:  # 500 stop strings
        body["stop"] = [f"{text[:8]}{i}" for i in range(500)]
    elif kind == 3:  # an image part
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 50_000}}
        body["messages"][0]["content"] = [{"type": "text", "text": text}, image]
    elif kind == 4:  # 1,000-level nested JSON
        return b'{"model": "%s", "messages": %s%s}' % (
            DEPLOYMENT.encode(),
            b"[" * 1000,
            b"]" * 1000,
        )
    else:  # a 100 KB completion prompt
        body = {"model": DEPLOYMENT, "prompt": text * (100_000 // len(text))}
    return json.dumps(body).encode()


def _hostile(client: int, index: int) -> ChatRequest:
    prompts = e2e_prompts()
    text = prompts[(client * 577 + index) % len(prompts)]
    path = "/v1/completions" if index % 6 == 5 else CHAT
    return ChatRequest(path, _hostile_body(index, text))


def _p99_ms(answers: list[Answer]) -> float:
    ordered = sorted(a.seconds for a in answers)
    return round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)


def test_a_hostile_body_flood_is_refused_and_ordinary_clients_are_answered(
    settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    with running_server(settings) as server:
        ordinary, flood = _beside(server.port, _hostile, clients=8, seconds=6.0)
        figures = server.status()["figures"][llm]
    row = fault_table.add(
        "hostile-body flood",
        "8 clients sending 100 KB prompts, 5,000 messages, 500 stop strings, image parts and "
        "1,000-level nested JSON beside 4 ordinary clients",
        ordinary.answers + flood.answers,
        hostile_p99_ms=_p99_ms(flood.answers),
    )
    assert row["lost"] == 0, _failures(flood.answers)[:5]
    assert {a.status for a in flood.answers} == {400} and len(flood.answers) > 60
    assert _all_ok(ordinary.answers), _failures(ordinary.answers)[:5]
    assert figures["errors"] == 0


TOKENS_PER_MINUTE = 1500


def _in_one_minute(seconds: float) -> None:
    """Wait, if need be, so that the next ``seconds`` fall in one fixed minute (the token
    limits' window) with a margin."""
    left = 60 - time.time() % 60
    if left < seconds + 4:
        time.sleep(left + 0.5)


def _overshoot(answers: list[Answer], limit: int) -> int:
    """Tokens the answers used beyond ``limit`` in the fullest minute of their sending."""
    offset = time.time() - time.monotonic()
    minutes: dict[int, int] = {}
    for answer in answers:
        minute = int((answer.sent_at + offset) // 60)
        minutes[minute] = minutes.get(minute, 0) + tokens_used(answer)
    return max(0, max(minutes.values(), default=0) - limit)


def test_a_token_limit_burst_never_overshoots(
    registry: Registry, settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    limited = {"tokens_per_minute": TOKENS_PER_MINUTE}
    _, burst_key = registry.create_api_key("burst", [DEPLOYMENT], **limited)
    _, plain_key = registry.create_api_key("plain", [DEPLOYMENT])
    with own_redis() as redis:
        strict = settings.model_copy(update={"require_api_key": True, "redis_url": redis.url})
        with running_server(strict) as server:
            _in_one_minute(6.0)
            burst = varied_openai(_bearer(burst_key))
            ordinary, flood = _beside(server.port, burst, 8, 6.0, _bearer(plain_key))
    overshoot = _overshoot(flood.answers, TOKENS_PER_MINUTE)
    row = fault_table.add(
        "token-limit burst",
        f"8 clients of an app limited to {TOKENS_PER_MINUTE:,} tokens a minute (Redis) "
        "beside 4 of an unlimited app",
        ordinary.answers + flood.answers,
        overshoot_tokens=overshoot,
        tokens_used=sum(tokens_used(a) for a in flood.answers),
    )
    assert row["lost"] == 0, _failures(flood.answers)[:5]
    assert {a.status for a in flood.answers} == {200, 429}, "the limit was reached"
    assert overshoot == 0
    assert _all_ok(ordinary.answers), _failures(ordinary.answers)[:5]


def _redis_outage(
    registry: Registry, settings: Settings, fault_table: FaultTable, *, stop: bool
) -> None:
    """Keyed chat traffic while the limits' own Redis is stopped (SIGSTOP) or killed for 4 s."""
    limited = {"rate_per_second": 1000.0, "tokens_per_minute": 10**6}  # Redis is asked
    _, key = registry.create_api_key("shop", [DEPLOYMENT], **limited)
    with own_redis() as redis:
        strict = settings.model_copy(update={"require_api_key": True, "redis_url": redis.url})
        with (
            running_server(strict) as server,
            ChatTraffic(server.port, 4, varied_openai(_bearer(key))) as traffic,
        ):
            time.sleep(2.0)
            assert redis.process is not None
            down = time.monotonic()
            if stop:
                redis.process.send_signal(signal.SIGSTOP)
            else:
                redis.kill9()
            time.sleep(4.0)
            if stop:
                redis.process.send_signal(signal.SIGCONT)
            else:
                redis.start()
            up = time.monotonic()
            time.sleep(4.0)
    during = traffic.between(down, up)
    how = "SIGSTOP" if stop else "kill -9"
    name = f"Redis {'stopped' if stop else 'killed'} under chat traffic"
    row = fault_table.add(name, f"{how} of the limits/cache Redis for 4 s, keys on", during)
    assert row["lost"] == 0, _failures(during)[:5]
    assert row["unavailable"] > 0, "limits cannot be checked: 503, never unlimited"
    after = traffic.between(up + 1.5)
    assert _all_ok(after), ("back by itself once Redis is", _failures(after)[:5])


def test_redis_stopped_under_chat_traffic(
    registry: Registry, settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    _redis_outage(registry, settings, fault_table, stop=True)


def test_redis_killed_under_chat_traffic(
    registry: Registry, settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    _redis_outage(registry, settings, fault_table, stop=False)


@contextmanager
def _write_locked(database: Path) -> Iterator[None]:
    """A second connection holds the file's write lock (``BEGIN EXCLUSIVE`` and a write)
    until the block ends."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        outside = sqlite3.connect(database, timeout=10, isolation_level=None)
        outside.execute("BEGIN EXCLUSIVE")
        outside.execute("UPDATE api_keys SET app = app")  # a write: the lock is really taken
        taken.set()
        release.wait(30)
        outside.execute("ROLLBACK")
        outside.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(15), "the outside connection did not take the lock"
    try:
        yield
    finally:
        release.set()
        thread.join(15)


def test_a_write_locked_sqlite_registry_never_stalls_keyed_clients(
    registry: Registry, settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    _, known = registry.create_api_key("shop", [DEPLOYMENT])
    fresh = [registry.create_api_key(f"new-{i}", [DEPLOYMENT])[1] for i in range(300)]

    def never_seen(client: int, index: int) -> ChatRequest:
        return varied_openai(_bearer(fresh[index % len(fresh)]))(client + 10, index)

    strict = settings.model_copy(update={"require_api_key": True})
    with (
        running_server(strict) as server,
        ChatTraffic(server.port, 4, varied_openai(_bearer(known))) as ordinary,
    ):
        time.sleep(2.0)  # the key is known before the lock
        with ChatTraffic(server.port, 1, never_seen) as new_keys:
            locked = time.monotonic()
            with _write_locked(Path(str(registry.engine.url.database))):
                time.sleep(5.0)
            unlocked = time.monotonic()
        time.sleep(1.0)
    during = ordinary.between(locked, unlocked) + new_keys.between(locked, unlocked)
    row = fault_table.add(
        "SQLite registry write-locked",
        "a second connection holds BEGIN EXCLUSIVE (and a write) on the registry file for 5 s; "
        "4 clients with a known key, 1 with a never-seen key each request",
        during,
    )
    assert row["lost"] == 0, _failures(during)[:5]
    assert _all_ok(ordinary.between(locked, unlocked)), "known keys answer from memory"
    slow = [a.seconds for a in new_keys.answers if a.status == 503 and a.seconds > 2.5]
    assert slow == [], "a never-seen key waited for the lock"


def _worker_pids(registry: Registry, count: int = 2, timeout: float = 60.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = {w.pid for w in live_workers(registry, DEPLOYMENT) if w.active_version}
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


def _connections(pid: int, port: int) -> int:
    """Client connections worker ``pid`` holds on ``port`` (workers share the listening
    socket, and keep-alive connections stay with the worker that accepted them)."""
    import psutil

    return sum(
        1
        for c in psutil.Process(pid).net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_a_worker_killed_mid_stream_loses_no_request(
    registry: Registry, settings: Settings, llm: str, fault_table: FaultTable
) -> None:
    with running_server(settings, workers=2) as server:
        pids = _worker_pids(registry)
        assert len(pids) == 2
        with ChatTraffic(server.port, 6, varied_openai(stream_every=1)) as traffic:
            time.sleep(2.0)
            held = {pid: _connections(pid, server.port) for pid in pids}
            os.kill(max(held, key=held.__getitem__), signal.SIGKILL)  # the one streaming
            time.sleep(5.0)
    during = traffic.answers
    row = fault_table.add(
        "worker killed mid-stream",
        "kill -9 of the one of two workers holding more of 6 streaming clients' connections; "
        "a cut stream is retried once",
        during,
        connections_cut=max(held.values()),
    )
    assert row["lost"] == 0, _failures(during)[:5]
    assert row["retried"] > 0, "no stream was cut: the kill was not mid-stream"
    assert _all_ok(during)


def test_postgres_restarted_under_chat_traffic(
    settings: Settings, llama: Path, fault_table: FaultTable
) -> None:
    with own_postgres() as postgres:
        strict = settings.model_copy(update={"require_api_key": True, "db_url": postgres.url})
        registry = Registry.from_url(strict.registry_url, actor="test")
        register_llm(registry, strict, llama)
        _, key = registry.create_api_key("shop", [DEPLOYMENT])
        with (
            running_server(strict) as server,
            ChatTraffic(server.port, 4, varied_openai(_bearer(key))) as traffic,
        ):
            time.sleep(3.0)  # the key is known (and remembered) before the outage
            down = time.monotonic()
            postgres.stop()
            time.sleep(5.0)
            postgres.start()
            up = time.monotonic()
            time.sleep(4.0)
        registry.close()
    during = traffic.between(down, up)
    row = fault_table.add(
        "Postgres restarted under chat traffic",
        "registry's Postgres stopped (immediate) for 5 s, started; keys on",
        during,
    )
    assert row["lost"] == 0, _failures(during)[:5]
    assert row["ok"] > 0, "a key checked before the outage stays good"
    after = traffic.between(up + 2.0)
    assert _all_ok(after), _failures(after)[:5]


def test_adapter_promotion_and_rollback_under_streamed_load(
    registry: Registry, settings: Settings, llama: Path, tmp_path: Path, fault_table: FaultTable
) -> None:
    v1, v2 = (
        register_adapter(registry, settings, llama, make_adapter(llama, tmp_path / f"a{s}", s))
        for s in (1, 2)
    )
    promote(registry, v1, canary_percent=0, timeout=10)
    with (
        running_server(settings) as server,
        ChatTraffic(server.port, 4, varied_openai(stream_every=2)) as traffic,
    ):
        time.sleep(2.0)
        start = time.monotonic()
        moved = promote(registry, v2, canary_percent=0, timeout=30)
        time.sleep(2.0)
        back = rollback(registry, DEPLOYMENT, timeout=30)
        time.sleep(2.0)
        end = time.monotonic()
    during = traffic.between(start, end)
    row = fault_table.add(
        "adapter promotion and rollback under streams",
        "promote a LoRA version, then roll back to the last, while 4 clients stream half "
        "their requests",
        during,
    )
    assert moved.rollout.state == RolloutState.COMPLETED and back.rollout.version == v1
    assert row["lost"] == 0, _failures(during)[:5]
    assert _all_ok(during)
    assert {a.version for a in during} == {v1, v2}, "both versions answered"
    assert any(a.body.startswith(b"data:") for a in during)
