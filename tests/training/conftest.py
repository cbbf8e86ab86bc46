"""Small CLINC150 slices and recipes on the tiny BERT for the training tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.paths import DATA_DIR

LABELS = ("timer", "transfer", "translate", "definition")
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _slice(source: Path, target: Path, per_label: int) -> None:
    counts = dict.fromkeys(LABELS, 0)
    rows = []
    for line in source.read_text().splitlines():
        row = json.loads(line)
        if row["label"] in counts and counts[row["label"]] < per_label:
            counts[row["label"]] += 1
            rows.append(line)
    target.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CLINC150, four intents: 160 train, 40 validation, 40 test rows."""
    folder = tmp_path_factory.mktemp("clinc-slice")
    _slice(DATA_DIR / "clinc150" / "train.jsonl", folder / "train.jsonl", 40)
    _slice(DATA_DIR / "clinc150" / "validation.jsonl", folder / "validation.jsonl", 10)
    _slice(DATA_DIR / "clinc150" / "test.jsonl", folder / "test.jsonl", 10)
    return folder


RecipeFactory = Callable[..., Path]


@pytest.fixture
def make_recipe(tmp_path: Path, tiny_data: Path, tiny_bert: Path) -> RecipeFactory:
    """Write a classification recipe on the tiny BERT and data; keyword args override sections."""

    def make(name: str = "tiny-clinc", **sections: dict[str, Any]) -> Path:
        recipe: dict[str, Any] = {
            "name": name,
            "task": "classification",
            "data": {
                "train": str(tiny_data / "train.jsonl"),
                "validation": str(tiny_data / "validation.jsonl"),
                "test": str(tiny_data / "test.jsonl"),
            },
            "model": {"base": str(tiny_bert), "max_length": 32},
            "training": {
                "epochs": 2,
                "batch_size": 8,
                "lr": 3.0e-3,
                "warmup_ratio": 0.1,
                "checkpoint_every_steps": 7,
                "seed": 7,
            },
        }
        for key, value in sections.items():
            recipe[key] = {**recipe.get(key, {}), **value}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return path

    return make


def subprocess_env(home: Path) -> dict[str, str]:
    """The test's environment for a child `conveyor` process, minus this process's rank vars."""
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env["CONVEYOR_HOME"] = str(home)
    return env


@pytest.fixture(autouse=True)
def _no_leaked_rank_vars() -> Any:
    """In-process runs set RANK etc.; do not let them leak into later tests' children."""
    before = {k: os.environ.get(k) for k in DIST_VARS}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
