"""The recipe's generation gates, and the language of a recipe's texts.

``Language`` picks how the gates split text into units before counting matches (BLEU's
tokenizer, ROUGE-L's tokens); a task check names a plug-in of ``gates.plugins``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, PositiveInt, model_validator

from conveyor.recipe._section import Section

__all__ = ["GenerationGates", "GenerationTaskCheck", "Language"]


class Language(StrEnum):
    """``en``: sacrebleu's 13a tokenizer, ROUGE-L over words (stemmed); ``zh``: sacrebleu's
    ``zh`` tokenizer (each CJK character a token), ROUGE-L over characters."""

    EN = "en"
    ZH = "zh"


class GenerationTaskCheck(StrEnum):
    NONE = "none"
    E2E_FACTS = "e2e-facts"
    CROSSWOZ_ACTS = "crosswoz-acts"
    EXACT_MATCH = "exact-match"
    REGEX = "regex"


class GenerationGates(Section):
    """Gates on generated text (causal-lm with chat data): greedy answers to test prompts."""

    max_prompts: PositiveInt = Field(
        default=200, description="Test prompts generated for (a fixed, seeded sample)."
    )
    seed: int = Field(default=0, description="Seed of the prompt sample.")
    language: Language = Field(
        default=Language.EN,
        description="Language of the answers and references: `en`, or `zh` (BLEU with "
        "sacrebleu's `zh` tokenizer, ROUGE-L over characters).",
    )
    max_new_tokens: PositiveInt = Field(default=64, le=4096, description="Tokens per answer.")
    batch_size: PositiveInt = Field(default=16, description="Prompts generated at once.")
    task_check: GenerationTaskCheck = Field(
        default=GenerationTaskCheck.NONE,
        description="`e2e-facts` (slot coverage of an E2E meaning representation), "
        "`crosswoz-acts` (every slot value of CrossWOZ dialogue acts said), "
        "`exact-match` or `regex` (extraction), or `none`.",
    )
    pattern: str | None = Field(
        default=None, description="Regex every answer must match (task_check: regex)."
    )
    golden: Path | None = Field(
        default=None, description="Golden suite YAML (prompt, must_include, ...); must pass whole."
    )
    headline_metric: str = Field(
        default="rouge_l",
        pattern=r"^(bleu|rouge_l|chrf)$",
        description="Metric given the paired champion interval and used for significance.",
    )
    min_bleu: float | None = Field(default=None, ge=0, le=1, description="Floor on BLEU (0..1).")
    min_rouge_l: float | None = Field(default=None, ge=0, le=1, description="Floor on ROUGE-L.")
    min_chrf: float | None = Field(default=None, ge=0, le=1, description="Floor on chrF (0..1).")
    max_omission_rate: float | None = Field(
        default=None, ge=0, le=1, description="Ceiling on the share of answers omitting a fact."
    )
    max_hallucination_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Ceiling on the share of answers contradicting or adding a fact.",
    )
    max_echo_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Ceiling on the share of answers that write the prompt's structured input "
        "back (act notation) instead of answering; reported by `crosswoz-acts`.",
    )
    min_task_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Floor on exact-match / regex accuracy."
    )
    max_headline_drop: float = Field(
        default=0.0, ge=0, le=1, description="Allowed drop of the headline metric vs champion."
    )
    max_fact_error_rise: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Allowed rise of each fact-error rate vs champion (the parity gate sets it).",
    )
    side_by_side: int = Field(
        default=5, ge=0, le=50, description="Prompts shown side by side in the report."
    )

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> Self:
        if self.task_check is GenerationTaskCheck.REGEX and not self.pattern:
            raise ValueError("gates.generation.pattern: required when task_check is regex")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"gates.generation.pattern: not a regex ({exc})") from exc
        return self
