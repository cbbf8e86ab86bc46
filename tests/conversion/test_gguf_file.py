"""The GGUF writer against llama.cpp itself: a tiny random Llama written as GGUF answers,
greedily, token for token what the torch model answers (so names, the rotary reordering,
hyperparameters and tokenizer are right), the quants store what they say, and an
architecture the converter does not write is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conversion import ConversionError, write_gguf
from conversion.gguf_layout import rotary_to_interleaved
from conveyor.llamacpp import LlamaCppModel
from conveyor.pretrained import smollm2_gguf
from testbed.tiny_models import write_tiny_llama

PROMPT = [{"role": "user", "content": "name[The Eagle], eatType[coffee shop], area[riverside]"}]


@pytest.fixture(scope="module")
def tiny(
    tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path
) -> tuple[Any, Any, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = write_tiny_llama(tmp_path_factory.mktemp("llama"), smollm2_tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder), folder


def _prompt_ids(tokenizer: Any) -> list[int]:
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _torch_answer(model: Any, tokenizer: Any, ids: list[int], tokens: int) -> str:
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False)
    return str(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))


def _llamacpp_answer(path: Path, ids: list[int], tokens: int) -> str:
    model = LlamaCppModel(path, context=256, slots=1)
    try:
        return model.complete(ids, tokens).text
    finally:
        model.close()


@pytest.mark.parametrize("tokenizer_from", ["folder", "base-gguf"])
def test_an_f16_gguf_answers_token_for_token_as_torch(
    tiny: tuple[Any, Any, Path], tmp_path: Path, tokenizer_from: str
) -> None:
    model, tokenizer, folder = tiny
    source = smollm2_gguf() if tokenizer_from == "base-gguf" else None
    path = tmp_path / "m.gguf"
    write_gguf(model, tokenizer, path, quant="f16", tokenizer_folder=folder, source_gguf=source)
    ids = _prompt_ids(tokenizer)
    expected = _torch_answer(model, tokenizer, ids, 24)
    assert len(expected.split()) > 5  # a random model rambles on: 24 tokens to compare
    assert _llamacpp_answer(path, ids, 24) == expected


def test_quants_store_what_they_say(tiny: tuple[Any, Any, Path], tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader

    model, tokenizer, folder = tiny
    types: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    for quant in ("f16", "q8_0", "q4_0"):
        path = tmp_path / f"{quant}.gguf"
        write_gguf(model, tokenizer, path, quant=quant, tokenizer_folder=folder)
        types[quant] = {t.name: t.tensor_type for t in GGUFReader(path).tensors}
        sizes[quant] = path.stat().st_size
    assert types["f16"]["blk.0.attn_q.weight"] == Q.F16
    assert types["q8_0"]["blk.0.ffn_down.weight"] == Q.Q8_0
    assert types["q4_0"]["blk.0.ffn_down.weight"] == Q.Q4_0
    assert types["q4_0"]["token_embd.weight"] == Q.Q8_0  # the widest matrix kept in 8 bits
    assert all(types[q]["output_norm.weight"] == Q.F32 for q in types)
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]


def test_an_architecture_the_converter_does_not_write_is_refused_by_name(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=64))
    with pytest.raises(
        ConversionError, match=r"'gpt2' model \(GPT2LMHeadModel\).*llama, qwen2, gemma3_text"
    ):
        write_gguf(model, None, tmp_path / "x.gguf", quant="f16", tokenizer_folder=tmp_path)
    assert not (tmp_path / "x.gguf").exists()


def test_a_quant_that_is_not_offered_is_refused() -> None:
    with pytest.raises(ConversionError, match="q4_k_m.*f16, q8_0, q4_0"):
        write_gguf(None, None, Path("x.gguf"), quant="q4_k_m", tokenizer_folder=Path("."))


def test_rotary_rows_go_from_halves_to_interleaved_pairs() -> None:
    # one head of 4 dimensions, HF order [x0, x1 | y0, y1] -> llama.cpp's [x0, y0, x1, y1]
    rows = np.array([[0.0], [1.0], [10.0], [11.0]])
    assert rotary_to_interleaved(rows, heads=1)[:, 0].tolist() == [0.0, 10.0, 1.0, 11.0]
    two = np.arange(8.0).reshape(8, 1)
    assert rotary_to_interleaved(two, heads=2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
