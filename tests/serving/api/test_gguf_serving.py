"""A GGUF version served by llama.cpp behind the whole lifecycle, on a real `bentoml serve`:
converted from the tiny Llama version that serves, it answers the official `openai`
client (streamed too) with the same greedy text as its parent, is promoted and rolled back
under streamed load losing nothing, and a GGUF changed on disk is refused at promotion."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conversion import ConversionError, convert_version
from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.control.errors import PromotionRefused
from serving.control.rollout import promote, rollback
from testbed.chat_traffic import ChatTraffic, varied_openai
from testbed.live_server import running_server
from testbed.tiny_models import write_tiny_llama
from testbed.traffic import count
from testbed.versions import DEPLOYMENT, register_llm

pytestmark = pytest.mark.integration
CHAT = [{"role": "user", "content": "name[The Eagle], eatType[coffee shop], area[riverside]"}]


@pytest.fixture
def versions(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> tuple[str, str]:
    """The tiny Llama, serving, and its f16 GGUF (registered, not promoted)."""
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    parent = register_llm(registry, settings, folder, max_new_tokens=64)
    return parent, convert_version(registry, settings, parent, quant="f16").version


def _greedy(port: int, stream: bool = False) -> tuple[str, str]:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=DEPLOYMENT,
                messages=CHAT,
                max_tokens=16,
                temperature=0,
                stream=True,  # type: ignore[arg-type]
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[0].model
    raw = client.chat.completions.with_raw_response.create(
        model=DEPLOYMENT,
        messages=CHAT,
        max_tokens=16,
        temperature=0,  # type: ignore[arg-type]
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-model-version"]


def test_a_gguf_version_serves_like_its_parent_and_moves_under_streamed_load(
    registry: Registry, settings: Settings, versions: tuple[str, str]
) -> None:
    parent, gguf = versions
    record = registry.resolve(gguf)
    assert record.metrics["converted_from"] == parent and record.metrics["quant"] == "f16"
    with running_server(settings) as server:
        before, answered_by = _greedy(server.port)
        assert answered_by == parent and len(before.split()) > 3
        with ChatTraffic(server.port, 4, varied_openai(stream_every=2)) as traffic:
            time.sleep(1.5)
            start = time.monotonic()
            moved = promote(registry, gguf, canary_percent=0, timeout=60)
            time.sleep(2.0)
            loaded = {v["version"]: v for v in server.status()["loaded"]}
            after, answered_by = _greedy(server.port)
            streamed, streamed_by = _greedy(server.port, stream=True)
            back = rollback(registry, DEPLOYMENT, timeout=60)
            time.sleep(1.5)
            end = time.monotonic()
    assert moved.rollout.state == RolloutState.COMPLETED and back.rollout.version == parent
    assert loaded[gguf]["backend"] == "llama.cpp"
    assert answered_by == gguf and streamed_by == gguf
    assert after == before, "f16 in llama.cpp answers greedily what fp32 torch answered"
    assert streamed == before
    during = traffic.between(start, end)
    assert during and count(during).ok == len(during), [a.status for a in during][:20]
    assert {a.version for a in during} == {parent, gguf}, "both versions answered"


def test_a_gguf_changed_on_disk_is_refused_and_nothing_moves(
    registry: Registry, versions: tuple[str, str]
) -> None:
    parent, gguf = versions
    path = Path(registry.resolve(gguf).artifact_uri or "") / "model.gguf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PromotionRefused, match="hash|content|changed"):
        promote(registry, gguf, canary_percent=0, timeout=10)
    assert registry.alias(DEPLOYMENT, "production") == parent


def test_a_gguf_version_does_not_convert_again(
    registry: Registry, settings: Settings, versions: tuple[str, str]
) -> None:
    _, gguf = versions
    with pytest.raises(ConversionError, match="already GGUF"):
        convert_version(registry, settings, gguf, quant="q8_0")
