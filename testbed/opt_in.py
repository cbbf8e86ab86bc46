"""Shipped recipes whose base is opt-in (a pinned GGUF no default install brings): tests run
them only where the file is installed, and otherwise skip with the command that installs it."""

from __future__ import annotations

from pathlib import Path

import yaml

from conveyor.gguf_base import INSTALL_COMMANDS, GgufBase, parse_gguf_base

__all__ = ["missing_opt_in_base", "opt_in_base", "shipped_recipe_params"]


def opt_in_base(recipe: Path) -> GgufBase | None:
    """The recipe's base when it is an opt-in GGUF (its pin is in ``INSTALL_COMMANDS``)."""
    raw = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    base = (raw.get("model") or {}).get("base")
    spec = parse_gguf_base(base) if isinstance(base, str) else None
    return spec if spec is not None and spec.sha256 in INSTALL_COMMANDS else None


def missing_opt_in_base(recipe: Path) -> str | None:
    """Why ``recipe`` cannot load here (its opt-in base is not installed, and how to install
    it), or None when it can."""
    spec = opt_in_base(recipe)
    if spec is None or spec.location.startswith("package:"):
        return None
    path = (recipe.parent / spec.location).expanduser()
    if path.is_file():
        return None
    return f"opt-in base not installed ({path.name}): run `{INSTALL_COMMANDS[spec.sha256]}`"


def shipped_recipe_params(paths: list[Path]) -> list[object]:
    """``paths`` as pytest parameters, each opt-in one whose base is missing marked skipped
    with the reason (which names the install command)."""
    import pytest

    params: list[object] = []
    for path in paths:
        reason = missing_opt_in_base(path)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params
