"""Real CLINC150 data, copied and corrupted one way per test, and a recipe pointing at it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conveyor.recipe import Recipe, load_recipe
from testbed.paths import DATA_DIR, RECIPES_DIR, SHARED_DATA_DIR

CLINC = (
    SHARED_DATA_DIR / "clinc150"
    if (SHARED_DATA_DIR / "clinc150").is_dir()
    else DATA_DIR / "clinc150"
)
SPLITS = ("train", "validation", "test")

Frames = dict[str, pd.DataFrame]
MakeRecipe = Callable[..., Recipe]


@pytest.fixture(scope="session")
def clinc_frames() -> Frames:
    """The real splits, read once per session (copy before changing them)."""
    return {name: pd.read_json(CLINC / f"{name}.jsonl", lines=True) for name in SPLITS}


def write_jsonl(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


@pytest.fixture
def make_recipe(tmp_path: Path, clinc_frames: Frames) -> MakeRecipe:
    """``make_recipe(train=frame_or_None, ..., overrides=[...])``: the demo recipe on copies."""

    def build(overrides: tuple[str, ...] = (), **changed: pd.DataFrame | None) -> Recipe:
        raw = yaml.safe_load((RECIPES_DIR / "clinc150-minilm.yaml").read_text())
        for name in SPLITS:
            frame = changed.get(name)
            raw["data"][name] = str(
                write_jsonl(
                    clinc_frames[name] if frame is None else frame, tmp_path / f"{name}.jsonl"
                )
            )
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_recipe(path, overrides)

    return build
