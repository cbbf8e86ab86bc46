"""The Great Expectations suites of chat splits, and the frames they run on.

Great Expectations judges the values (known roles, no blank turn, the last turn from the
assistant) on two frames per split: one row per turn, one row per conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from conveyor.chat import ROLES, Conversation, prompt_key
from conveyor.recipe.schema import ChecksSection
from data_checks.expectations import BLANK_TEXT

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

__all__ = ["conversation_frame", "conversation_suite", "turn_frame", "turn_suite"]


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
