"""The llama.cpp decode engine of a GGUF version, in process: concurrent requests answer as
they would alone, a request whose consumer stops is stopped (llama.cpp decodes no further),
a request too long for a slot is refused before it queues, and retiring closes the model
once the running requests are done."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from conversion import write_gguf
from conveyor.llamacpp import LlamaCppModel
from serving.engine.llamacpp_engine import LlamaCppEngine
from serving.engine.params import DecodeError, SamplingParams
from serving.refusal import InvalidRequest
from testbed.tiny_models import write_tiny_llama


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> tuple[Path, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = write_tiny_llama(tmp_path_factory.mktemp("llama"), smollm2_tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    path = folder / "model.gguf"
    model = AutoModelForCausalLM.from_pretrained(folder)
    write_gguf(model, tokenizer, path, quant="f16", tokenizer_folder=folder)
    return path, tokenizer


@pytest.fixture
def engine(gguf: tuple[Path, Any]) -> Any:
    path, tokenizer = gguf
    engine = LlamaCppEngine(LlamaCppModel(path, context=128, slots=4), tokenizer, name="t")
    yield engine
    engine.close()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_concurrent_requests_answer_as_they_would_alone(engine: LlamaCppEngine) -> None:
    prompts = [_ids(engine.tokenizer, t) for t in ("The river", "A coffee shop", "Near the")]
    greedy = SamplingParams(max_tokens=12)

    async def both() -> tuple[list[str], list[str]]:
        alone = [(await engine.complete(p, greedy))[0] for p in prompts]
        together = await asyncio.gather(*(engine.complete(p, greedy) for p in prompts))
        return alone, [text for text, _ in together]

    alone, together = asyncio.run(both())
    assert together == alone and all(alone)
    stats = engine.stats()
    assert stats["finished"] == 6 and stats["errors"] == 0 and stats["tokens_generated"] == 72


def test_a_stream_whose_consumer_stops_is_stopped(engine: LlamaCppEngine) -> None:
    async def first_two() -> int:
        seen = 0
        stream = engine.stream(_ids(engine.tokenizer, "The river"), SamplingParams(max_tokens=100))
        async for _event in stream:
            seen += 1
            if seen == 2:
                break
        await stream.aclose()
        for _ in range(200):  # the thread ends at llama.cpp's next chunk
            if engine.stats()["running"] == 0:
                break
            await asyncio.sleep(0.05)
        return seen

    assert asyncio.run(first_two()) == 2
    stats = engine.stats()
    assert stats["cancelled"] == 1 and stats["running"] == 0
    assert stats["tokens_generated"] == 0  # it never finished: llama.cpp stopped decoding it


def test_requests_that_cannot_run_are_refused_before_they_queue(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest, match="more than this model's context of 128"):
        engine.check(100, SamplingParams(max_tokens=50))
    with pytest.raises(InvalidRequest, match="empty"):
        engine.check(0, SamplingParams(max_tokens=5))
    with pytest.raises(DecodeError, match="no adapter"):
        engine.check(5, SamplingParams(max_tokens=5), adapter="a")


def test_retiring_closes_the_model_once_running_requests_end(engine: LlamaCppEngine) -> None:
    async def retire_mid_answer() -> str:
        stream = engine.complete(_ids(engine.tokenizer, "The river"), SamplingParams(max_tokens=30))
        task = asyncio.ensure_future(stream)
        await asyncio.sleep(0.05)
        engine.retire()
        text, last = await task
        assert last.finish_reason == "length"
        return text

    assert asyncio.run(retire_mid_answer())
    deadline = time.monotonic() + 10  # closed by the request's thread as it ends
    while not engine.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.closed
