"""A tiny chat-LM recipe for flow tests: a copy of a tiny Llama, slices of E2E, LoRA, wide
gates (random weights: the stages and their gates are under test, not the quality)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from testbed.paths import E2E_DIR

__all__ = ["write_tiny_chat_recipe"]

_ROWS = (("train", 64), ("validation", 16), ("test", 30))


def write_tiny_chat_recipe(
    folder: Path, tiny_llama: Path, name: str, extra: dict[str, Any]
) -> Path:
    """``folder/NAME.yaml``: the tiny recipe with ``extra`` sections (``convert``,
    ``compress``) added; its base and data are copied under ``folder``."""
    base = folder / "base"
    shutil.copytree(tiny_llama, base)
    data = folder / "data"
    data.mkdir()
    for split, rows in _ROWS:
        lines = (E2E_DIR / f"{split}.jsonl").read_text().splitlines(keepends=True)[:rows]
        (data / f"{split}.jsonl").write_text("".join(lines))
    recipe: dict[str, Any] = {
        "name": name,
        "task": "causal-lm",
        "data": {"train": "data/train.jsonl", "validation": "data/validation.jsonl",
                 "test": "data/test.jsonl", "format": "chat", "label_field": None},
        "model": {"base": str(base), "max_length": 160},
        "training": {"max_steps": 4, "batch_size": 8, "lr": 3e-2, "warmup_ratio": 0.1,
                     "lora": {"enabled": True, "r": 4, "alpha": 8,
                              "target_modules": ["q_proj", "v_proj"]}},
        "gates": {"bootstrap_samples": 100, "max_perplexity_increase": 100.0,
                  "generation": {"max_prompts": 4, "max_new_tokens": 6,
                                 "task_check": "e2e-facts", "max_headline_drop": 1.0}},
        **extra,
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
