"""``validate_recipe``: the data checks a recipe asks for, its format picking text or chat.

The one reader of the recipe in this stage: it flattens it into the plain arguments of
:func:`data_checks.text.validate.validate` or :func:`data_checks.chat.validate.validate_chat`.
"""

from __future__ import annotations

from collections.abc import Callable

from conveyor.recipe.schema import DataFormat, Recipe
from data_checks.chat.tokens import chat_token_counter
from data_checks.chat.validate import validate_chat
from data_checks.reference import Reference
from data_checks.report import Report
from data_checks.text.tokens import token_counter
from data_checks.text.validate import validate

__all__ = ["validate_recipe"]

Progress = Callable[[str], None]


def validate_recipe(
    recipe: Recipe, reference: Reference | None = None, progress: Progress | None = None
) -> Report:
    """:func:`validate` (text) or :func:`validate_chat` (chat), the recipe flattened."""
    if recipe.data.format is DataFormat.CHAT:
        tokens, method = chat_token_counter(recipe.model.base)
        return validate_chat(
            recipe.data.splits(),
            deployment=recipe.name,
            checks=recipe.checks,
            max_length=recipe.model.max_length,
            tokens=tokens,
            method=method,
            reference=reference,
            progress=progress,
            extra=recipe.data.extra,
        )
    return validate(
        recipe.data.splits(),
        deployment=recipe.name,
        task=recipe.task,
        text_field=recipe.data.text_field,
        label_field=recipe.data.label_field,
        checks=recipe.checks,
        max_length=recipe.model.max_length,
        counter=token_counter(recipe.model.base),
        reference=reference,
        progress=progress,
        extra=recipe.data.extra,
    )
