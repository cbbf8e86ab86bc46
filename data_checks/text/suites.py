"""The Great Expectations suites, per task type, as plain code.

Each function returns the expectations for one split; ``meta["why"]`` is the sentence a
failure is reported with. Columns a frame lacks get only ``ExpectColumnToExist`` (which
fails and says so) instead of expectations that could not be evaluated.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from conveyor.recipe.schema import ChecksSection, Task
from data_checks.expectations import BLANK_TEXT

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

__all__ = ["suite_for"]


def _text_expectations(
    text_field: str, columns: Collection[str], checks: ChecksSection
) -> list[Expectation]:
    from great_expectations.expectations.core.expect_column_to_exist import ExpectColumnToExist
    from great_expectations.expectations.core.expect_column_value_lengths_to_be_between import (
        ExpectColumnValueLengthsToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_of_type import (
        ExpectColumnValuesToBeOfType,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_match_regex import (
        ExpectColumnValuesToNotMatchRegex,
    )

    exists = ExpectColumnToExist(column=text_field, meta={"why": "text column is missing"})
    if text_field not in columns:
        return [exists]
    return [
        exists,
        ExpectColumnValuesToNotBeNull(column=text_field, meta={"why": "text is null"}),
        ExpectColumnValuesToBeOfType(
            column=text_field, type_="str", meta={"why": "text is not a string"}
        ),
        ExpectColumnValuesToNotMatchRegex(
            column=text_field, regex=BLANK_TEXT, meta={"why": "text is blank"}
        ),
        ExpectColumnValueLengthsToBeBetween(
            column=text_field,
            min_value=checks.min_text_chars,
            max_value=checks.max_text_chars,
            meta={
                "why": f"text length outside checks.min_text_chars..max_text_chars "
                f"({checks.min_text_chars}..{checks.max_text_chars} characters)"
            },
        ),
    ]


def _label_expectations(
    label_field: str, columns: Collection[str], train_labels: Sequence[object] | None
) -> list[Expectation]:
    from great_expectations.expectations.core.expect_column_to_exist import ExpectColumnToExist
    from great_expectations.expectations.core.expect_column_unique_value_count_to_be_between import (  # noqa: E501
        ExpectColumnUniqueValueCountToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )

    exists = ExpectColumnToExist(column=label_field, meta={"why": "label column is missing"})
    if label_field not in columns:
        return [exists]
    expectations: list[Expectation] = [
        exists,
        ExpectColumnValuesToNotBeNull(column=label_field, meta={"why": "label is null"}),
    ]
    if train_labels is None:  # this is train: it defines the classes; it needs two at least
        expectations.append(
            ExpectColumnUniqueValueCountToBeBetween(
                column=label_field, min_value=2, meta={"why": "train has fewer than 2 classes"}
            )
        )
    else:
        expectations.append(
            ExpectColumnValuesToBeInSet(
                column=label_field,
                value_set=list(train_labels),
                meta={"why": "label never seen in train (unknown, or missing from train)"},
            )
        )
    return expectations


def suite_for(
    task: Task,
    *,
    columns: Collection[str],
    text_field: str,
    label_field: str | None,
    checks: ChecksSection,
    train_labels: Sequence[object] | None,
) -> list[Expectation]:
    """Expectations for one split; ``train_labels`` is None for train itself."""
    expectations = _text_expectations(text_field, columns, checks)
    if task is Task.CLASSIFICATION and label_field:
        expectations += _label_expectations(label_field, columns, train_labels)
    return expectations
