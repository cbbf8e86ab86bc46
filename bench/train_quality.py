"""Quality: fine-tune a recipe (default: MiniLM on full CLINC150) and score its test split.

    .venv/bin/python -m bench.train_quality [--recipe recipes/clinc150-minilm.yaml] [--set k=v ...]

Trains as ``conveyor train`` does (``training.dispatch``: the DeepSpeed engine in this process
on the CPU, the DeepSpeed launcher with ``training.gpus``; the recipe's defaults unless
overridden) into a scratch CONVEYOR_HOME, then reports test accuracy, in-scope accuracy
(gold label not ``oos``) and out-of-scope recall, with the training wall time, as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from conveyor.recipe import load_recipe
from conveyor.settings import Settings
from training import dispatch, predict
from training.data import LabelMap, encode_classification, read_texts

OOS = "oos"


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def score_recipe(recipe_path: str, overrides: list[str]) -> dict[str, object]:
    """Fine-tune ``recipe_path`` (with ``overrides``) in a scratch home; its test scores."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    recipe = load_recipe(recipe_path, overrides)
    assert recipe.data.test is not None and recipe.data.label_field is not None
    with tempfile.TemporaryDirectory(prefix="conveyor-quality-") as home:
        started = time.perf_counter()
        # As `conveyor train` runs it: in this process on the CPU, through the DeepSpeed
        # launcher with training.gpus (its ranks find the scratch home in the environment).
        with _environment(CONVEYOR_HOME=home):
            result = dispatch.run(recipe, Settings(home=Path(home)), show_progress=False)
        wall = time.perf_counter() - started
        folder = Path(str(result.model_dir))
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        names = tuple(json.loads((folder / "label_map.json").read_text()))
    texts, labels = read_texts(recipe.data.test, recipe.data.text_field, recipe.data.label_field)
    gold = LabelMap(names).ids(labels, "test")
    data = encode_classification(tokenizer, texts, gold, recipe.model.max_length)
    predicted, _, _ = predict(model, data, batch_size=256, pad_id=tokenizer.pad_token_id)
    pairs = list(zip(predicted, gold, strict=True))
    oos = names.index(OOS) if OOS in names else -1
    in_scope = [(p, g) for p, g in pairs if g != oos]
    out_scope = [(p, g) for p, g in pairs if g == oos]
    return {
        "recipe": recipe_path,
        "overrides": overrides,
        "steps": result.steps,
        "train_wall_s": round(wall, 1),
        "test_accuracy": sum(p == g for p, g in pairs) / len(pairs),
        "in_scope_accuracy": sum(p == g for p, g in in_scope) / max(1, len(in_scope)),
        "oos_recall": sum(p == oos for p, _ in out_scope) / max(1, len(out_scope)),
        "validation": result.metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/clinc150-minilm.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("training").setLevel(logging.INFO)
    print(json.dumps(score_recipe(args.recipe, args.overrides), indent=2))


if __name__ == "__main__":
    main()
