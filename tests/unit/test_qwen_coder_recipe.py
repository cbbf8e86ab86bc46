"""The opt-in Qwen2.5-Coder recipe: never installed by default, a missing GGUF refused with the
command that installs it (runs everywhere), one pin across recipe, install script and docs,
and, where the file is installed, the file that pin names (skipped elsewhere, with the
command)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conveyor.errors import RecipeError
from conveyor.gguf_base import INSTALL_COMMANDS, gguf_architecture, locate_gguf
from conveyor.pretrained import BaseModelUnavailable, file_sha256, resolve_pretrained
from conveyor.recipe import load_recipe
from testbed.opt_in import missing_opt_in_base, opt_in_base
from testbed.paths import RECIPES_DIR, REPO_ROOT

pytestmark = pytest.mark.unit

RECIPE = RECIPES_DIR / "crosswoz-qwen-coder.yaml"
SCRIPT = "scripts/install-qwen-coder.sh"
DOC = REPO_ROOT / "docs" / "qwen2.5-coder.md"


def _pin() -> str:
    spec = opt_in_base(RECIPE)
    assert spec is not None, "the recipe's base must be an opt-in GGUF pin"
    return spec.sha256


def test_a_missing_gguf_is_refused_naming_the_install_command(tmp_path: Path) -> None:
    absent = f"{tmp_path}/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf@sha256:{_pin()}"
    with pytest.raises(RecipeError) as caught:
        load_recipe(RECIPE, [f"model.base={absent}"])
    text = str(caught.value)
    assert "no such file" in text and f"install it with `{SCRIPT}`" in text
    assert "never installed by default" in text
    with pytest.raises(BaseModelUnavailable, match=re.escape(SCRIPT)):
        resolve_pretrained(absent, tmp_path / "cache")
    assert os.access(REPO_ROOT / SCRIPT, os.X_OK)


def test_the_install_command_is_named_only_for_its_own_pin(tmp_path: Path) -> None:
    other = f"{tmp_path}/absent.gguf@sha256:{'b' * 64}"
    with pytest.raises(RecipeError) as caught:
        load_recipe(RECIPE, [f"model.base={other}"])
    assert "no such file" in str(caught.value) and SCRIPT not in str(caught.value)


def test_the_base_is_never_installed_by_default() -> None:
    for path in ("pyproject.toml", "scripts/install.sh", "scripts/demo.sh", "scripts/test.sh"):
        text = (REPO_ROOT / path).read_text(encoding="utf-8")
        assert "pandas-sns" not in text and "install-qwen-coder" not in text, path


def test_recipe_script_and_docs_carry_one_pin_the_license_and_the_caveat() -> None:
    pin = _pin()
    assert INSTALL_COMMANDS[pin] == SCRIPT
    assert f"SHA256={pin}" in (REPO_ROOT / SCRIPT).read_text(encoding="utf-8")
    doc = DOC.read_text(encoding="utf-8")
    assert pin in doc and pin in RECIPE.read_text(encoding="utf-8")
    for caveat in ("without a license file", "Qwen2.5 Coder 0.5B Instruct AWQ", "Apache"):
        assert caveat in doc
    license_text = (REPO_ROOT / "docs" / "licenses" / "Qwen2.5-Coder-Apache-2.0.txt").read_text()
    assert "Apache License" in license_text and "END OF TERMS AND CONDITIONS" in license_text


def test_the_installed_gguf_is_the_pinned_qwen2() -> None:
    reason = missing_opt_in_base(RECIPE)
    if reason:
        pytest.skip(reason)
    spec = opt_in_base(RECIPE)
    assert spec is not None
    path = locate_gguf(spec.__class__(str(RECIPE.parent / spec.location), spec.sha256))
    assert file_sha256(path) == spec.sha256
    assert gguf_architecture(path) == "qwen2"
