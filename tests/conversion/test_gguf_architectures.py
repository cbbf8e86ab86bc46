"""GGUF conversion of the other architectures a base may have: a tiny random Qwen2 and Gemma 3
version (a pinned GGUF base, converted to a transformers folder as training loads it, no
fine-tuning) written back as GGUF by the converter, loaded by llama.cpp, answers greedily the
tokens torch answers, each with the log-probability torch gives it (so names, norms, biases,
hyperparameters, sliding window and tokenizer are right); what llama.cpp cannot compute is
refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from gguf import GGUFReader

from conversion import ConversionError, convert_version, write_gguf
from conversion.gguf_layout import LAYOUTS
from conveyor.llamacpp import LlamaCppModel
from conveyor.model_folder import GGUF_FILE, ModelKind, read_manifest
from conveyor.pretrained import file_sha256, resolve_pretrained
from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.tiny_gguf import write_tiny_gguf
from testbed.versions import register_llm

pytestmark = pytest.mark.integration

CHAT = [{"role": "user", "content": "hello, the user 你好, and the weather?"}]
TOKENS = 16
# f16 weights in llama.cpp against fp32 torch: log-probabilities agree to a few hundredths
ATOL = 3e-2


@pytest.fixture(scope="module", params=["qwen2", "gemma3"])
def version(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(arch, base GGUF, version folder, model, tokenizer): a version as the base made it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    arch = str(request.param)
    tmp = tmp_path_factory.mktemp(arch)
    base = tmp / f"tiny-{arch}.gguf"
    write_tiny_gguf(base, arch)
    converted = resolve_pretrained(f"{base}@sha256:{file_sha256(base)}", tmp / "cache")
    assert converted is not None
    model = AutoModelForCausalLM.from_pretrained(converted.path, dtype=torch.float32).eval()
    return arch, base, converted.path, model, AutoTokenizer.from_pretrained(converted.path)


def _llamacpp_greedy(path: Path, ids: list[int]) -> tuple[list[int], list[float]]:
    """llama.cpp's greedy tokens and each one's log-probability (its own completion API)."""
    model = LlamaCppModel(path, context=256, slots=1)
    try:
        body = {"prompt": ids, "max_tokens": TOKENS, "temperature": 0.0, "n_probs": 1}
        result = model._server.handle_completions(body | {"top_k": 0, "min_p": 0.0})
    finally:
        model.close()
    content = result["choices"][0]["logprobs"]["content"]
    return [int(c["id"]) for c in content], [float(c["logprob"]) for c in content]


def _torch_logprobs(model: Any, ids: list[int], answer: list[int]) -> list[float]:
    """torch's log-probability of each answer token, the prompt and answer so far given."""
    with torch.no_grad():
        logits = model(torch.tensor([ids + answer])).logits[0, len(ids) - 1 : -1]
    chosen = torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(answer)), answer]
    return [float(x) for x in chosen]


def _torch_greedy(model: Any, ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=TOKENS, do_sample=False, eos_token_id=None
        )
    return [int(t) for t in out[0, len(ids) :]]


@pytest.mark.parametrize("tokenizer_from", ["base-gguf", "folder"])
def test_a_version_of_another_architecture_answers_in_llamacpp_as_in_torch(
    version: Any, tmp_path: Path, tokenizer_from: str
) -> None:
    arch, base, folder, model, tokenizer = version
    if arch == "gemma3" and tokenizer_from == "folder":
        pytest.skip("a Gemma 3 tokenizer comes only from its base's GGUF (refused below)")
    path = tmp_path / "version.gguf"
    source = base if tokenizer_from == "base-gguf" else None
    write_gguf(model, tokenizer, path, quant="f16", tokenizer_folder=folder, source_gguf=source)
    text = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert len(ids) > 16  # past Gemma 3's tiny sliding window: its local layers are exercised

    answer, logprobs = _llamacpp_greedy(path, ids)
    assert answer == _torch_greedy(model, ids)
    torch.testing.assert_close(
        torch.tensor(logprobs), torch.tensor(_torch_logprobs(model, ids, answer)),
        atol=ATOL, rtol=0.0,
    )  # fmt: skip


def test_conveyor_convert_writes_a_version_of_another_architecture(
    version: Any, registry: Registry, settings: Settings
) -> None:
    arch, base, folder, _model, _tokenizer = version
    pinned = f"{base}@sha256:{file_sha256(base)}"
    parent = register_llm(registry, settings, folder, base=pinned, deployment=f"tiny-{arch}")
    record = convert_version(registry, settings, parent, quant="q8_0")
    assert record.metrics["converted_from"] == parent and record.status == "trained"
    assert record.artifact_uri is not None
    assert read_manifest(record.artifact_uri).kind is ModelKind.GGUF
    reader = GGUFReader(Path(record.artifact_uri) / GGUF_FILE)
    assert reader.get_field("general.architecture").contents() == arch  # type: ignore[union-attr]
    lineage = json.loads((Path(record.artifact_uri) / "lineage.json").read_text())
    assert lineage["tokenizer_from"] == str(base)  # the base's own tokenizer fields


def test_a_gemma3_tokenizer_without_its_base_gguf_is_refused(version: Any, tmp_path: Path) -> None:
    arch, _base, folder, model, tokenizer = version
    if arch != "gemma3":
        pytest.skip("Qwen2's byte-level BPE is written from its folder (tested above)")
    with pytest.raises(ConversionError, match="gemma3 tokenizer is carried over only from"):
        write_gguf(model, tokenizer, tmp_path / "x.gguf", quant="f16", tokenizer_folder=folder)


def test_a_gemma3_llamacpp_would_compute_differently_is_refused(tmp_path: Path) -> None:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=16,
        layer_types=["full_attention", "sliding_attention"],
    )  # fmt: skip
    with pytest.raises(ConversionError) as refused:
        write_gguf(Gemma3ForCausalLM(config), None, tmp_path / "x.gguf", quant="f16",
                   tokenizer_folder=tmp_path)  # fmt: skip
    message = str(refused.value)
    assert "query_pre_attn_scalar 16 is not head_dim 8" in message
    assert "layer_types are not 5 sliding then 1 full" in message
    assert not (tmp_path / "x.gguf").exists()


def test_an_architecture_without_a_layout_is_refused_naming_the_supported(tmp_path: Path) -> None:
    from transformers import MistralConfig, MistralForCausalLM

    model = MistralForCausalLM(
        MistralConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    )  # fmt: skip
    with pytest.raises(ConversionError) as refused:
        write_gguf(model, None, tmp_path / "x.gguf", quant="f16", tokenizer_folder=tmp_path)
    assert "'mistral' model (MistralForCausalLM)" in str(refused.value)
    assert f"supported architectures are {', '.join(LAYOUTS)}" in str(refused.value)
