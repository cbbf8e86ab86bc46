"""The typed recipe: schema and loading."""

from conveyor.recipe.loading import (
    SPLIT_SUFFIXES,
    apply_overrides,
    load_recipe,
    parse_override,
    recipe_from_dict,
)
from conveyor.recipe.schema import BUILTIN_MODELS, Recipe, Task

__all__ = [
    "BUILTIN_MODELS",
    "SPLIT_SUFFIXES",
    "Recipe",
    "Task",
    "apply_overrides",
    "load_recipe",
    "parse_override",
    "recipe_from_dict",
]
