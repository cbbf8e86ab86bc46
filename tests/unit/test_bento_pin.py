"""The pin a Bento carries in its source, and where packaging takes that source from."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import serving.bento_pin
from serving.bento_pin import PIN_PATH, pinned_model, write_pin
from serving.control.server import REPO_ROOT


def test_the_checkout_carries_no_pin_and_the_variable_overrides() -> None:
    assert not (REPO_ROOT / PIN_PATH).exists()
    assert pinned_model(None) is None and pinned_model("") is None  # conveyor serve: follow
    assert pinned_model("intents:v2-abc") == "intents:v2-abc"


def test_a_written_pin_is_read_beside_the_module_and_still_overridden(tmp_path: Path) -> None:
    (tmp_path / "serving").mkdir()  # a Bento's src/: the module and the pin side by side
    copy = tmp_path / "serving" / "bento_pin.py"
    shutil.copy2(str(serving.bento_pin.__file__), copy)
    assert write_pin(tmp_path, "intents:v3-0123") == PIN_PATH
    spec = importlib.util.spec_from_file_location("bento_src_pin", copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.pinned_model(None) == "intents:v3-0123"
    assert module.pinned_model("intents:v4-4567") == "intents:v4-4567"


def test_packaging_takes_the_bento_source_from_the_checkout_root() -> None:
    assert (REPO_ROOT / "serving" / "control" / "server.py").is_file()
    assert (REPO_ROOT / "pyproject.toml").is_file()
