"""LoRA on a tiny random Llama with SmolLM2's tokenizer: what trains, what is saved, what
is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from training.errors import BaseModelError
from training.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoraSettings,
    load_adapter,
    parameter_counts,
    save_adapter,
    trainable,
    wrap_with_lora,
)

pytestmark = pytest.mark.integration

SETTINGS = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))


def _model(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)


def test_only_the_adapters_train_and_the_adapter_folder_is_small(
    tiny_llama: Path, tmp_path: Path
) -> None:
    model = wrap_with_lora(_model(tiny_llama), SETTINGS)
    counts = parameter_counts(model)
    assert 0 < counts[0] < counts[1] / 50
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable(model), lr=1e-2)
    frozen_before = model.base_model.model.model.embed_tokens.weight.detach().clone()
    ids = torch.randint(3, 1000, (2, 16))
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.equal(model.base_model.model.model.embed_tokens.weight, frozen_before)

    files = save_adapter(model, tmp_path / "adapter")
    assert [f.name for f in files] == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    weights = sum(p.stat().st_size for p in (tmp_path / "adapter").iterdir())
    base_size = (tiny_llama / "model.safetensors").stat().st_size
    assert weights < base_size / 20
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        reloaded = load_adapter(_model(tiny_llama), tmp_path / "adapter")
        assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5)
        bare = _model(tiny_llama)(input_ids=ids).logits
    assert not torch.allclose(bare, expected, atol=1e-4)  # the adapter changed something


def test_unknown_target_modules_are_refused_with_the_ones_it_has(tiny_llama: Path) -> None:
    wrong = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("c_attn",))
    with pytest.raises(BaseModelError, match=r"c_attn.*q_proj"):
        wrap_with_lora(_model(tiny_llama), wrong)
