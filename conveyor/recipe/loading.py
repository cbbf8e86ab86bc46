"""Load a recipe from YAML, apply ``--set`` overrides, validate, resolve paths.

Every problem is reported with the key it concerns and the file it came from,
so that ``conveyor recipe check`` can say exactly what to fix.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from conveyor.errors import RecipeError
from conveyor.gguf_base import GgufBaseError, locate_gguf, parse_gguf_base
from conveyor.recipe.schema import BUILTIN_MODELS, Recipe

__all__ = [
    "SPLIT_SUFFIXES",
    "apply_overrides",
    "load_recipe",
    "parse_override",
    "recipe_from_dict",
]

SPLIT_SUFFIXES = (".jsonl", ".csv", ".parquet")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PATH_KEYS = ("train", "validation", "test")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.max_steps=50`` -> (["training", "max_steps"], 50); values parse as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError("--set", [f"{text!r}: expected KEY=VALUE, e.g. training.max_steps=50"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError("--set", [f"{text!r}: value is not valid YAML ({exc})"]) from exc
    return [part.strip() for part in key.split(".")], value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> set[tuple[str, ...]]:
    """Apply overrides in place; return the key paths they set."""
    touched: set[tuple[str, ...]] = set()
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise RecipeError("--set", [f"{text!r}: {where} is a value, not a section"])
            node = child
        node[keys[-1]] = value
        touched.add(tuple(keys))
    return touched


def _read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    if not path.is_file():
        raise RecipeError(source, ["recipe file not found"])
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(source, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(source, [f"{where}invalid YAML: {problem}"]) from exc
    if loaded is None:
        raise RecipeError(source, ["the file is empty"])
    if not isinstance(loaded, dict):
        raise RecipeError(source, ["top level must be a mapping of keys (name, task, data, ...)"])
    return loaded


def _resolve_paths(raw: dict[str, Any], recipe_dir: Path, touched: set[tuple[str, ...]]) -> None:
    data = raw.get("data")
    if isinstance(data, dict):
        for key in _PATH_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                base = Path.cwd() if ("data", key) in touched else recipe_dir
                data[key] = str((base / value).expanduser().resolve())
        extra = data.get("extra")
        if isinstance(extra, list):
            base = Path.cwd() if ("data", "extra") in touched else recipe_dir
            data["extra"] = [
                str((base / value).expanduser().resolve()) if isinstance(value, str) else value
                for value in extra
            ]
    gates = raw.get("gates")
    generation = gates.get("generation") if isinstance(gates, dict) else None
    if isinstance(generation, dict) and isinstance(generation.get("golden"), str):
        anchor = Path.cwd() if ("gates", "generation", "golden") in touched else recipe_dir
        generation["golden"] = str((anchor / generation["golden"]).expanduser().resolve())
    model = raw.get("model")
    if isinstance(model, dict):
        base_value = model.get("base")
        if isinstance(base_value, str) and base_value and base_value not in BUILTIN_MODELS:
            anchor = Path.cwd() if ("model", "base") in touched else recipe_dir
            candidate = (anchor / base_value).expanduser()
            looks_like_path = base_value.startswith((".", "/", "~")) or candidate.exists()
            if looks_like_path:
                model["base"] = str(candidate.resolve())


def _field_names(loc: Sequence[int | str]) -> list[str]:
    """Known keys of the section at ``loc`` (for 'did you mean')."""
    model: type[BaseModel] = Recipe
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        nested = [arg for arg in (field.annotation, *get_args(field.annotation))]
        sections = [t for t in nested if isinstance(t, type) and issubclass(t, BaseModel)]
        if not sections:
            return []
        model = sections[0]
    return list(model.model_fields)


def _masked(value: Any) -> Any:
    """A URL's password shown as ``***`` (a capture sink's URL may hold one by mistake)."""
    if not isinstance(value, str) or "://" not in value:
        return value
    from conveyor.registry.engine import masked_url

    return masked_url(value)


def _describe(error: Any, touched: set[tuple[str, ...]]) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _field_names(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
        text = f"{key}: unknown key{hint}"
    elif kind == "missing":
        text = f"{key}: required key is missing"
    elif kind == "value_error" and not loc:
        text = str(error["msg"]).removeprefix("Value error, ")
    else:
        got = error.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {_masked(got)!r})"
        text = f"{key}: {error['msg']}{shown}"
    if tuple(loc) in touched:
        text += " [set by --set]"
    return text


def _check_files(recipe: Recipe) -> list[str]:
    problems: list[str] = []
    extra = {f"extra[{i}]": path for i, path in enumerate(recipe.data.extra)}
    for split, path in (recipe.data.splits() | extra).items():
        if not path.exists():
            problems.append(f"data.{split}: file not found: {path}")
        elif not path.is_file():
            problems.append(f"data.{split}: not a file: {path}")
        elif path.suffix.lower() not in SPLIT_SUFFIXES:
            wanted = ", ".join(SPLIT_SUFFIXES)
            problems.append(f"data.{split}: unsupported format '{path.suffix}' (use {wanted})")
    golden = recipe.gates.generation.golden
    if golden is not None and not golden.is_file():
        problems.append(f"gates.generation.golden: file not found: {golden}")
    base = recipe.model.base
    spec = parse_gguf_base(base)  # the schema refused a .gguf without a valid pin
    if spec is not None:
        try:
            locate_gguf(spec)  # its hash is checked where it is converted
        except GgufBaseError as exc:
            problems.append(f"model.base: {exc}")
    elif base not in BUILTIN_MODELS:
        path = Path(base)
        if path.is_absolute():
            if not path.is_dir():
                problems.append(f"model.base: no model folder at {path}")
            elif not (path / "config.json").is_file():
                problems.append(f"model.base: {path} has no config.json (not a model folder)")
        elif not _HUB_ID.match(base):
            builtins = ", ".join(BUILTIN_MODELS)
            problems.append(
                f"model.base: {base!r} is neither a built-in ({builtins}), "
                "an existing folder, nor a hub id"
            )
    return problems


def _validate(raw: dict[str, Any], source: str, touched: set[tuple[str, ...]]) -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error, touched) for error in exc.errors()]
        raise RecipeError(source, problems) from exc
    problems = _check_files(recipe)
    if problems:
        raise RecipeError(source, problems)
    return recipe


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read, override, validate and resolve a recipe; raise RecipeError naming every problem."""
    recipe_path = Path(path)
    raw = _read_yaml(recipe_path)
    touched = apply_overrides(raw, overrides)
    _resolve_paths(raw, recipe_path.resolve().parent, touched)
    return _validate(raw, str(recipe_path), touched)


def recipe_from_dict(
    data: dict[str, Any], overrides: Iterable[str] = (), *, source: str = "recipe"
) -> Recipe:
    """A stored, already resolved recipe (e.g. a version's, from the registry), overridden."""
    raw = copy.deepcopy(data)
    touched = apply_overrides(raw, overrides)
    _resolve_paths(raw, Path.cwd(), touched)
    return _validate(raw, source, touched)
