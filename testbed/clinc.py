"""Small, real slices of CLINC150 for tiny training runs, and its texts as varied traffic."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

from testbed.paths import DATA_DIR

INTENTS = ("timer", "transfer", "translate", "definition")


def write_slice(split: str, per_label: int, target: Path, shuffle_seed: int | None = None) -> Path:
    """First ``per_label`` rows of each of four intents; labels shuffled when a seed is given."""
    counts = dict.fromkeys(INTENTS, 0)
    rows: list[dict[str, Any]] = []
    for line in (DATA_DIR / "clinc150" / f"{split}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["label"] in counts and counts[row["label"]] < per_label:
            counts[row["label"]] += 1
            rows.append(row)
    if shuffle_seed is not None:
        labels = [row["label"] for row in rows]
        random.Random(shuffle_seed).shuffle(labels)
        rows = [{**row, "label": label} for row, label in zip(rows, labels, strict=True)]
    target.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return target


@functools.cache
def clinc_texts(split: str = "test") -> tuple[str, ...]:
    """Every text of a CLINC150 split, in a fixed shuffled order: varied traffic for load tests
    (one repeated text hides the prediction cache and every race that needs mixed lengths)."""
    lines = (DATA_DIR / "clinc150" / f"{split}.jsonl").read_text().splitlines()
    texts = [str(json.loads(line)["text"]) for line in lines]
    random.Random(0).shuffle(texts)
    return tuple(texts)
