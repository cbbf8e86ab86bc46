"""A Chinese answer streamed to the official `openai` client by a real `bentoml serve`.

The tiny Llama is taught one Chinese answer (full-width punctuation, an emoji). SmolLM2's
byte-level tokenizer spells most of its characters in 2 or 3 tokens, so a server that sent
each token's text as it came would put U+FFFD into the stream; every chunk must hold whole
characters, and the chunks must add up to the unstreamed answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.live_server import running_server
from testbed.tiny_models import teach_tiny_llama, write_tiny_llama
from testbed.versions import DEPLOYMENT, register_llm

pytestmark = pytest.mark.integration

ASK: list[ChatCompletionMessageParam] = [
    {
        "role": "user",
        "content": "根据以下对话动作，写一句中文客服回复（请简短🙏）：\n"
        "告知(餐馆.电话=010-82150018)",
    }
]
ANSWER = "好的，电话是010-82150018。祝您用餐愉快！😊"


@pytest.fixture
def chinese_llm(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> str:
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    teach_tiny_llama(folder, [dict(m) for m in ASK], ANSWER, steps=200)
    return register_llm(registry, settings, folder, max_new_tokens=64)


def test_the_answer_spells_characters_over_several_tokens(smollm2_tokenizer: Any) -> None:
    ids = smollm2_tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    pieces = [smollm2_tokenizer.decode([i]) for i in ids]
    assert len(ids) > len(ANSWER)
    assert sum("\ufffd" in p for p in pieces) >= 10  # token by token, characters break


def test_streamed_chunks_hold_whole_characters_and_add_up_to_the_answer(
    settings: Settings, chinese_llm: str
) -> None:
    import openai

    with running_server(settings) as server:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="-")
        whole = client.chat.completions.create(
            model=DEPLOYMENT,
            messages=ASK,
            max_tokens=60,
            temperature=0,
        )
        assert whole.choices[0].message.content == ANSWER
        stream = client.chat.completions.create(
            model=DEPLOYMENT,
            messages=ASK,
            max_tokens=60,
            temperature=0,
            stream=True,
        )
        deltas = [c.choices[0].delta.content for c in stream if c.choices]
    texts = [d for d in deltas if d]
    assert "".join(texts) == ANSWER
    assert len(texts) >= 10, texts  # streamed a character or a few at a time, not at the end
    assert not [t for t in texts if "\ufffd" in t], texts
