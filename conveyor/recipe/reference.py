"""The recipe reference as a Markdown table, generated from the schema itself.

The README embeds this table between markers and a test keeps the two equal,
so the docs always name the same keys, defaults and meanings as the code.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

from conveyor.recipe.schema import Recipe

__all__ = ["README_END", "README_START", "field_rows", "markdown_reference"]

README_START = "<!-- recipe-reference:start (generated: conveyor recipe reference) -->"
README_END = "<!-- recipe-reference:end -->"


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} or null"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " or ".join(f"`{m.value}`" for m in annotation)
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: typing.Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    return f"`{value}`"


def field_rows(
    model: type[BaseModel] = Recipe, prefix: str = ""
) -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default, meaning) for every leaf field of the recipe."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [
            a
            for a in (annotation, *typing.get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested:
            yield from field_rows(nested[0], f"{prefix}{name}.")
            continue
        yield f"{prefix}{name}", _type_name(annotation), _default(field), field.description or ""


def markdown_reference() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, meaning in field_rows():
        lines.append(f"| `{key}` | {kind} | {default} | {meaning.replace('|', '/')} |")
    return "\n".join(lines)
