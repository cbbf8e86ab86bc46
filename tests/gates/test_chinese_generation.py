"""The Chinese gates end to end through a model that writes Chinese: a tiny Llama taught one
CrossWOZ reference, judged with ``language: zh`` against the base's tokenizers and English's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.chat import Message
from conveyor.recipe.schema import GatesSection
from gates.chat.evaluate import judge_generation, run_generation
from gates.chat.test_set import PromptGroup
from testbed.tiny_models import teach_tiny_llama, write_tiny_llama

pytestmark = pytest.mark.integration

PROMPT = (
    "根据以下对话动作，写一句中文客服回复：\n"
    "告知(餐馆.人均消费=131元)；告知(餐馆.名称=金水湾度假村)"
)


def _gates(language: str) -> GatesSection:
    generation = {
        "language": language,
        "max_prompts": 1,
        "max_new_tokens": 64,
        "batch_size": 1,
        "task_check": "crosswoz-acts",
        "headline_metric": "chrf",
        "min_chrf": 0.9,
    }
    return GatesSection(bootstrap_samples=50, generation=generation)  # type: ignore[arg-type]


def test_a_model_that_says_the_reference_scores_full_marks_in_chinese(
    smollm2_tokenizer_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference = "好的，金水湾度假村人均消费131元。"
    group = PromptGroup((Message("user", PROMPT),), (reference,), "k")
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    teach_tiny_llama(folder, [{"role": "user", "content": PROMPT}], reference, steps=200)
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    runs: dict[str, Any] = {}
    for language in ("zh", "en"):
        asked = {"generation": _gates(language).generation, "max_length": 256}
        runs[language] = run_generation("v1", model, tokenizer, [group], **asked)
    assert runs["zh"].answers == [reference]
    zh = judge_generation(runs["zh"], None, [group], _gates("zh")).candidate.metrics
    en = judge_generation(runs["en"], None, [group], _gates("en")).candidate.metrics
    assert zh["chrf"] == pytest.approx(1.0) and zh["rouge_l"] == pytest.approx(1.0)
    assert zh["bleu"] == pytest.approx(1.0)
    assert zh["omission_rate"] == 0.0 and zh["hallucination_rate"] == 0.0
    assert en["bleu"] == 0.0  # the 13a tokenizer sees one word: no 4-gram to match
    verdict = judge_generation(runs["zh"], None, [group], _gates("zh")).verdict
    assert {c.name: c.outcome for c in verdict.checks}["min_chrf"] == "pass"
