"""Data checks for chat splits: GE suites on turns and conversations, plus the pandas checks.

Great Expectations judges the values (known roles, no blank turn, the last turn from the
assistant) on two frames per split: one row per turn, one row per conversation. The pandas
checks judge what GE has no expectation for: repeated conversations, prompts of validation
or test also in train (by the prompt, not only the whole text), and conversation token
lengths against ``model.max_length``. A row of the wrong shape makes the split unusable,
with ``file:line`` and the field in the report's error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from conveyor.chat import ROLES, Conversation, prompt_key, read_chat_split
from conveyor.recipe.schema import ChecksSection
from data_checks import checks as data_gates
from data_checks.report import Check, Outcome
from data_checks.stats import duplicates, leakage
from data_checks.suites import BLANK_TEXT

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

__all__ = [
    "ChatTokens",
    "chat_checks",
    "conversation_frame",
    "read_chat_splits",
    "turn_frame",
    "turn_suite",
    "conversation_suite",
]

APPROXIMATE_CHAT = "approximation: ceil(characters / 4) + 4 template tokens per turn"
ChatTokens = Callable[[Sequence[Conversation]], np.ndarray]


def read_chat_splits(splits: Mapping[str, Path]) -> dict[str, list[Conversation]]:
    """Every split's conversations; a row of the wrong shape raises (naming file:line)."""
    return {name: read_chat_split(path, strict=False) for name, path in splits.items()}


def turn_frame(conversations: Sequence[Conversation]) -> pd.DataFrame:
    """One row per turn: ``line``, ``turn``, ``role``, ``content``."""
    rows = [
        (c.line, index, m.role, m.content)
        for c in conversations
        for index, m in enumerate(c.messages)
    ]
    return pd.DataFrame(rows, columns=["line", "turn", "role", "content"])


def conversation_frame(conversations: Sequence[Conversation]) -> pd.DataFrame:
    """One row per conversation: ``line``, ``turns``, ``last_role``, ``prompt``, ``text``."""
    return pd.DataFrame(
        {
            "line": [c.line for c in conversations],
            "turns": [len(c.messages) for c in conversations],
            "last_role": [c.messages[-1].role for c in conversations],
            "prompt": [prompt_key(c.prompt) for c in conversations],
            "text": [prompt_key(c.messages) for c in conversations],
        }
    )


def turn_suite(checks: ChecksSection) -> list[Expectation]:
    from great_expectations.expectations.core.expect_column_value_lengths_to_be_between import (
        ExpectColumnValueLengthsToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_match_regex import (
        ExpectColumnValuesToNotMatchRegex,
    )

    roles = ", ".join(ROLES)
    return [
        ExpectColumnValuesToBeInSet(
            column="role", value_set=list(ROLES), meta={"why": f"turn role not one of {roles}"}
        ),
        ExpectColumnValuesToNotMatchRegex(
            column="content", regex=BLANK_TEXT, meta={"why": "turn content is empty"}
        ),
        ExpectColumnValueLengthsToBeBetween(
            column="content",
            max_value=checks.max_text_chars,
            meta={"why": f"turn longer than checks.max_text_chars={checks.max_text_chars}"},
        ),
    ]


def conversation_suite() -> list[Expectation]:
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )

    return [
        ExpectColumnValuesToBeInSet(
            column="last_role",
            value_set=["assistant"],
            meta={"why": "last turn is not from the assistant (nothing to learn)"},
        ),
        ExpectColumnValuesToBeBetween(
            column="turns",
            min_value=2,
            meta={"why": "conversation has no prompt before its answer"},
        ),
    ]


@dataclass(frozen=True)
class _Keys:
    prompts: pd.Series
    texts: pd.Series


def _repeated_prompts(split: str, found: Any) -> Check:
    summary = (
        f"{found.rows:,} of {found.total:,} rows ({found.share:.2%}) repeat a prompt of the "
        "split with another answer (several references per prompt: expected, not gated)"
    )
    return Check("repeated_prompts", split, Outcome.PASSED, summary, details={"rows": found.rows})


def _prompt_leakage(split: str, found: Any, limit: float) -> Check:
    check = data_gates.check_leakage(split, found, limit)
    summary = check.summary.replace("also appear in train", "have a prompt also in train")
    return Check("prompt_leakage", split, check.outcome, summary, details=check.details)


def chat_checks(
    conversations: Mapping[str, Sequence[Conversation]],
    checks: ChecksSection,
    max_length: int,
    tokens: ChatTokens,
    method: str,
) -> list[Check]:
    """Duplicates, prompt and text leakage against train, and token truncation, per split."""
    keys = {
        name: _Keys(
            pd.Series([prompt_key(c.prompt) for c in rows]),
            pd.Series([prompt_key(c.messages) for c in rows]),
        )
        for name, rows in conversations.items()
    }
    found: list[Check] = []
    for name, key in keys.items():
        found.append(
            data_gates.check_duplicates(name, duplicates(key.texts), checks.max_duplicate_share)
        )
        found.append(_repeated_prompts(name, duplicates(key.prompts)))
        if name != "train" and "train" in keys:
            train = keys["train"]
            limit = checks.max_leakage_share
            found.append(data_gates.check_leakage(name, leakage(train.texts, key.texts), limit))
            found.append(_prompt_leakage(name, leakage(train.prompts, key.prompts), limit))
    for name, rows in conversations.items():
        counted = tokens(rows)
        check = data_gates.check_truncation(
            name, counted, max_length, checks.max_truncated_share, method
        )
        found.append(
            Check(
                "conversation_truncation",
                name,
                check.outcome,
                check.summary.replace("texts", "conversations", 1),
                details=check.details,
            )
        )
    return found


def approximate_chat_tokens(conversations: Sequence[Conversation]) -> np.ndarray:
    """Tokens per conversation without a tokenizer: characters / 4 plus 4 per turn."""
    return np.asarray(
        [sum(-(-len(m.content) // 4) + 4 for m in c.messages) for c in conversations],
        dtype=np.int64,
    )


def template_chat_tokens(tokenizer: Any) -> ChatTokens:
    """Tokens per conversation as the tokenizer's chat template renders it."""

    def count(conversations: Sequence[Conversation]) -> np.ndarray:
        texts = [tokenizer.apply_chat_template(c.as_dicts(), tokenize=False) for c in conversations]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return np.asarray([len(row) for row in ids], dtype=np.int64)

    return count
