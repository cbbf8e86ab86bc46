"""LoRA on a tiny random Llama with SmolLM2's tokenizer, and the generative gates through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.chat import read_chat_split
from conveyor.recipe.schema import GatesSection
from gates.chat_test_set import group_by_prompt, sample_prompts
from gates.generation_eval import judge_generation, run_generation
from gates.golden import GoldenCase, Message
from testbed.paths import E2E_DIR
from testbed.tiny_models import write_tiny_llama
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


def test_generative_gates_run_both_models_on_the_same_prompts(
    tiny_llama: Path, smollm2_tokenizer: Any, smollm2_tokenizer_dir: Path, tmp_path: Path
) -> None:
    gates = GatesSection(
        bootstrap_samples=200,
        generation={  # type: ignore[arg-type]
            "max_prompts": 6,
            "max_new_tokens": 8,
            "batch_size": 4,
            "task_check": "e2e-facts",
            "side_by_side": 3,
        },
    )
    groups = sample_prompts(group_by_prompt(read_chat_split(E2E_DIR / "test.jsonl")), 6, 0)
    golden = [GoldenCase("never empty", (Message("user", "Hello"),), regex=r"^")]
    champion_model = _model(write_tiny_llama(tmp_path / "other", smollm2_tokenizer_dir, seed=1))
    candidate_model = wrap_with_lora(_model(tiny_llama), SETTINGS)
    asked = {"generation": gates.generation, "golden": golden, "max_length": 256}
    candidate = run_generation("e2e:v1", candidate_model, smollm2_tokenizer, groups, **asked)
    champion = run_generation("base", champion_model, smollm2_tokenizer, groups, **asked)
    assert len(candidate.answers) == 6 and all(isinstance(a, str) for a in candidate.answers)
    assert candidate.answers != champion.answers  # two different random models
    assert candidate.tokens > 6 * 10 and candidate.nll > 0
    again = run_generation("e2e:v1", candidate_model, smollm2_tokenizer, groups, **asked)
    assert again.answers == candidate.answers  # greedy: the same answers every time
    text_only = run_generation(
        "e2e:v1", candidate_model, smollm2_tokenizer, groups, **asked, reference_loss=False
    )
    assert text_only.answers == candidate.answers and text_only.scores is not None
    assert text_only.tokens == 0 and "perplexity_s" not in text_only.seconds

    judged = judge_generation(candidate, champion, groups, gates)
    metrics = judged.candidate.metrics
    assert metrics["prompts"] == 6 and 0 <= metrics["bleu"] <= 1
    assert metrics["omission_rate"] > 0.5  # a random model states no facts
    assert metrics["perplexity"] > 1000  # ...and knows nothing of the references
    assert judged.candidate.golden_failures == ()
    assert judged.interval is not None and judged.verdict.gain is not None
    assert {c.name for c in judged.verdict.checks} >= {"golden_suite", "max_headline_drop"}
    assert len(judged.side_by_side) <= 3
    for row in judged.side_by_side:
        assert row.prompt.startswith("Write one or two sentences") and row.champion != row.candidate
