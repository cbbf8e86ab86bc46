"""The generative gates through a LoRA model: a tiny random Llama with SmolLM2's tokenizer
against another, on the same E2E prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.chat import read_chat_split
from conveyor.recipe.schema import GatesSection
from gates.chat.evaluate import judge_generation, run_generation
from gates.chat.golden import GoldenCase, Message
from gates.chat.test_set import group_by_prompt, sample_prompts
from testbed.paths import E2E_DIR
from testbed.tiny_models import write_tiny_llama
from training.lora import LoraSettings, wrap_with_lora

pytestmark = pytest.mark.integration

SETTINGS = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))


def _model(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)


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
