"""The official `openai` client against a real `bentoml serve` of a tiny random Llama.

Sync, async and streamed calls, stop and seed, refusals in OpenAI's shape (n > 1, context
overflow, unknown model, bad key, tokens per minute), and a client that leaves mid-stream:
the worker's decoding stops (its engine's decoded-token count stops growing).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.live_server import Server, running_server
from testbed.tiny_models import write_tiny_llama
from testbed.versions import DEPLOYMENT, register_llm

pytestmark = pytest.mark.integration
MAX_NEW_TOKENS = 400  # the version's cap; the tiny Llama's context is 512
CHAT = [{"role": "user", "content": "Name a restaurant near the river."}]


@pytest.fixture
def llm(registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path) -> str:
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    return register_llm(registry, settings, folder, max_new_tokens=MAX_NEW_TOKENS)


def _metrics(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def _engine(server: Server, version: str) -> dict[str, Any]:
    loaded = {v["version"]: v for v in server.status()["loaded"]}
    engine: dict[str, Any] = loaded[version]["engine"]
    return engine


def test_the_openai_client_calls_chat_and_completions_with_keys_limits_and_errors(
    registry: Registry, settings: Settings, llm: str
) -> None:
    import openai

    strict = settings.model_copy(update={"require_api_key": True})
    _, key = registry.create_api_key("shop", [DEPLOYMENT], may_pin_versions=True)
    _, small = registry.create_api_key("small", [DEPLOYMENT], tokens_per_minute=60)
    _, plain = registry.create_api_key("plain", [DEPLOYMENT])  # may not pin a version
    with running_server(strict) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)

        listed = client.models.list()
        assert [m.id for m in listed.data] == [DEPLOYMENT, llm]  # this key may pin
        ordinary = openai.OpenAI(base_url=base, api_key=plain, max_retries=0)
        assert [m.id for m in ordinary.models.list().data] == [DEPLOYMENT]
        with pytest.raises(openai.PermissionDeniedError) as no_pin:
            ordinary.chat.completions.create(model=llm, messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
        assert no_pin.value.code == "model_not_allowed"
        assert no_pin.value.body["param"] == "model"  # type: ignore[index]

        raw = client.chat.completions.with_raw_response.create(
            model=DEPLOYMENT,
            messages=CHAT,
            max_tokens=8,
            temperature=0,  # type: ignore[arg-type]
        )
        assert raw.headers["x-model-version"] == llm
        answer = raw.parse()
        assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
        assert answer.system_fingerprint == llm and answer.model == llm
        assert answer.choices[0].message.role == "assistant"
        assert answer.choices[0].finish_reason in ("stop", "length")
        usage = answer.usage
        assert usage is not None and usage.prompt_tokens > 5
        assert 1 <= usage.completion_tokens <= 8
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        again = client.chat.completions.with_raw_response.create(  # greedy: the same text
            model=llm,
            messages=CHAT,
            max_tokens=8,
            temperature=0,  # type: ignore[arg-type]
        )
        assert again.headers["x-model-role"] == "pinned"
        assert again.parse().choices[0].message.content == answer.choices[0].message.content
        judged = server.status()["figures"][llm]["requests"]
        client.chat.completions.create(  # pinned and run by the model: still no evidence
            model=llm,
            messages=CHAT,
            max_tokens=3,
            temperature=0.7,  # type: ignore[arg-type]
        )
        assert server.status()["figures"][llm]["requests"] == judged

        text = client.completions.create(model=DEPLOYMENT, prompt="The", max_tokens=6, seed=1)
        assert text.object == "text_completion" and text.usage is not None
        assert text.usage.completion_tokens <= 6 and text.choices[0].text is not None
        sampled = [
            client.completions.create(
                model=DEPLOYMENT, prompt="The", max_tokens=12, temperature=1.0, seed=seed
            )
            .choices[0]
            .text
            for seed in (7, 7, 8)
        ]
        assert sampled[0] == sampled[1]  # the same seed, the same sample

        long = client.completions.create(
            model=DEPLOYMENT, prompt="The", max_tokens=40, temperature=0
        )
        words = long.choices[0].text
        stop = words[5:8] if len(words) >= 8 else None
        if stop and stop.strip():
            cut = client.completions.create(
                model=DEPLOYMENT, prompt="The", max_tokens=40, temperature=0, stop=[stop]
            )
            assert cut.choices[0].finish_reason == "stop"
            assert cut.choices[0].text == words[: words.index(stop)]

        chunks = list(
            client.chat.completions.create(
                model=DEPLOYMENT,
                messages=CHAT,  # type: ignore[arg-type]
                max_tokens=10,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks[0].choices[0].delta.role == "assistant"
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finals = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finals[-1] in ("stop", "length") and all(f is None for f in finals[:-1])
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens <= 10
        greedy8 = client.chat.completions.create(
            model=DEPLOYMENT,
            messages=CHAT,
            max_tokens=10,
            temperature=0,  # type: ignore[arg-type]
        )
        assert streamed == greedy8.choices[0].message.content

        async def twice() -> list[str]:
            aclient = openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0)
            calls = [
                aclient.chat.completions.create(
                    model=DEPLOYMENT,
                    messages=CHAT,
                    max_tokens=4,
                    temperature=0,  # type: ignore[arg-type]
                )
                for _ in range(2)
            ]
            return [r.choices[0].message.content or "" for r in await asyncio.gather(*calls)]

        assert len(set(asyncio.run(twice()))) == 1

        with pytest.raises(openai.BadRequestError) as n2:
            client.chat.completions.create(model=DEPLOYMENT, messages=CHAT, n=2)  # type: ignore[arg-type]
        assert n2.value.body["param"] == "n"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as over:
            client.completions.create(model=DEPLOYMENT, prompt="word " * 300, max_tokens=300)
        message = str(over.value.body["message"])  # type: ignore[index]
        assert (
            "512" in message and "300" in message and over.value.code == "context_length_exceeded"
        )
        with pytest.raises(openai.BadRequestError) as capped:
            client.completions.create(model=DEPLOYMENT, prompt="a", max_tokens=MAX_NEW_TOKENS + 1)
        assert str(MAX_NEW_TOKENS) in str(capped.value.body["message"])  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as unknown:
            client.completions.create(model=DEPLOYMENT, prompt="a", extra_body={"colour": "red"})
        assert unknown.value.body["param"] == "colour"  # type: ignore[index]
        errors_before = server.status()["figures"][llm]["errors"]
        with pytest.raises(openai.BadRequestError) as seed:  # torch would raise a ValueError
            client.completions.create(model=DEPLOYMENT, prompt="a", max_tokens=2, seed=2**64)
        assert seed.value.body["param"] == "seed"  # type: ignore[index]
        tiny = client.completions.create(  # the audit's overflow: now greedy, and answered
            model=DEPLOYMENT, prompt="The", max_tokens=3, temperature=1e-45
        )
        assert tiny.choices[0].text is not None
        assert server.status()["figures"][llm]["errors"] == errors_before
        with pytest.raises(openai.NotFoundError) as missing:
            client.completions.create(model=f"{DEPLOYMENT}:v99", prompt="a", max_tokens=2)
        assert missing.value.code == "model_not_found"
        bad = openai.OpenAI(base_url=base, api_key="cvy_not-a-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            bad.models.list()
        assert refused.value.body["type"] == "authentication_error"  # type: ignore[index]

        limited = openai.OpenAI(base_url=base, api_key=small, max_retries=0)
        with pytest.raises(openai.BadRequestError) as never:  # prompt + 40 > 60: can never fit
            limited.chat.completions.create(model=DEPLOYMENT, messages=CHAT, max_tokens=40)  # type: ignore[arg-type]
        assert never.value.body["param"] == "max_tokens"  # type: ignore[index]
        assert never.value.code == "tokens_over_limit"
        limited.chat.completions.create(model=DEPLOYMENT, messages=CHAT, max_tokens=8)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as tpm:  # reserved before it decodes
            limited.chat.completions.create(model=DEPLOYMENT, messages=CHAT, max_tokens=8)  # type: ignore[arg-type]
        assert 1 <= int(tpm.value.response.headers["retry-after"]) <= 60
        assert "60 tokens per minute" in str(tpm.value.body["message"])  # type: ignore[index]
        figures = server.status()["figures"][llm]
        assert figures["errors"] == 0  # refusals are never the version's errors
        exported = _metrics(server.port)
        for series in ("time_to_first_token_seconds", "output_tokens", "output_tokens_per_second"):
            assert f'conveyor_{series}_count{{deployment="{DEPLOYMENT}"' in exported
        assert 'reason="length"' in exported and 'outcome="tokens_limited"' in exported


def _post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def _bound(schema: dict[str, Any], name: str, key: str) -> Any:
    field = schema["properties"][name]
    return next(b[key] for b in field.get("anyOf", [field]) if key in b)


def test_the_served_document_states_the_bounds_the_server_enforces(
    settings: Settings, llm: str
) -> None:
    """Read each bound from the worker's own /docs.json, then send a value at it (answered)
    and just over it (400 naming that field)."""
    with running_server(settings) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/docs.json")
        raw = conn.getresponse().read()
        assert "推荐一家河边的便宜餐馆。".encode() in raw  # the Chinese example, not \u escapes
        document = json.loads(raw)
        for path in ("/v1/chat/completions", "/v1/completions"):
            body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            schema, example = body["schema"], body["examples"]["english"]["value"]
            chinese = body["examples"]["chinese"]["value"]
            status, answer = _post(server.port, path, chinese)
            assert status == 200, answer
            top = _bound(schema, "max_tokens", "maximum")
            assert top == MAX_NEW_TOKENS
            hottest = _bound(schema, "temperature", "maximum")
            status, answer = _post(server.port, path, example | {"temperature": hottest})
            assert status == 200, answer
            over = {
                "temperature": hottest + 0.01,
                "top_p": _bound(schema, "top_p", "maximum") + 0.01,
                "stop": ["x"] * (_bound(schema, "stop", "maxItems") + 1),
                "max_tokens": top + 1,
            }
            for name, value in over.items():
                status, answer = _post(server.port, path, example | {name: value})
                assert (status, answer["error"]["param"]) == (400, name), (path, name, answer)


def _open_stream(port: int, max_tokens: int, stream: bool = True) -> socket.socket:
    body = json.dumps(
        {"model": DEPLOYMENT, "prompt": "The", "max_tokens": max_tokens, "stream": stream}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


def test_a_client_that_leaves_mid_stream_stops_its_decoding(settings: Settings, llm: str) -> None:
    import openai

    with running_server(settings) as server:
        # keys off (the demo): the client's placeholder key is anonymous, as the demo prints it
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="-")
        chunks = client.chat.completions.create(
            model=DEPLOYMENT,
            messages=CHAT,
            max_tokens=4,
            stream=True,  # type: ignore[arg-type]
        )
        assert [c for c in chunks if c.choices and c.choices[0].finish_reason]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = {
            "model": DEPLOYMENT,
            "prompt": "The",
            "max_tokens": MAX_NEW_TOKENS,
            "temperature": 0,
        }
        conn.request(
            "POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"}
        )
        whole = json.loads(conn.getresponse().read())
        if whole["choices"][0]["finish_reason"] != "length":
            pytest.skip("the random model ended early; nothing to cut short")
        before = _engine(server, llm)["tokens_generated"]
        sock = _open_stream(server.port, MAX_NEW_TOKENS)
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        sock.close()  # gone after the first tokens
        time.sleep(1.0)
        settled = _engine(server, llm)
        time.sleep(1.0)
        later = _engine(server, llm)
        used = later["tokens_generated"] - before
        assert later["tokens_generated"] == settled["tokens_generated"]  # nothing decodes now
        assert used < MAX_NEW_TOKENS, used  # it stopped well before its 400 tokens
        assert later["cancelled"] >= 1 and later["running"] == 0
        assert 'reason="cancelled"' in _metrics(server.port)

        # the same for an answer that is not streamed: its client leaves while it decodes
        before, cancelled = later["tokens_generated"], later["cancelled"]
        sock = _open_stream(server.port, MAX_NEW_TOKENS, stream=False)
        deadline = time.monotonic() + 30
        while _engine(server, llm)["running"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        sock.close()
        time.sleep(1.0)
        settled = _engine(server, llm)
        time.sleep(1.0)
        later = _engine(server, llm)
        assert later["tokens_generated"] == settled["tokens_generated"]  # nothing decodes now
        assert later["tokens_generated"] - before < MAX_NEW_TOKENS
        assert later["cancelled"] == cancelled + 1 and later["running"] == 0
