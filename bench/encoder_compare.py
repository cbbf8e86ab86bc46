"""Two classifier recipes on the same test split: accuracy and macro-F1 with 95% bootstrap
intervals, the paired interval of their difference, and prediction throughput.

    nice -n 5 .venv/bin/python -m bench.encoder_compare \\
        recipes/sib200-zh-minilm.yaml recipes/sib200-zh-e5.yaml [--set k=v ...]

Each recipe is trained as ``conveyor train`` trains it (``training.dispatch``, CPU, in a
scratch CONVEYOR_HOME); ``--set`` overrides apply to both (e.g. ``training.epochs=2`` for a
shorter run), ``--set-second`` to the second only. The second recipe is the candidate: the
difference is second minus first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.train_quality import _environment
from conveyor.mean_pool import register_mean_pool
from conveyor.recipe import load_recipe
from conveyor.settings import Settings
from gates.bootstrap import bootstrap_interval, paired_difference_interval
from training import dispatch, predict
from training.data import LabelMap, encode_classification, read_texts


def _macro_f1(predicted: npt.NDArray[Any], gold: npt.NDArray[Any], labels: int) -> float:
    scores = []
    for label in range(labels):
        tp = float(np.sum((predicted == label) & (gold == label)))
        fp = float(np.sum((predicted == label) & (gold != label)))
        fn = float(np.sum((predicted != label) & (gold == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def train_and_predict(recipe_path: str, overrides: list[str]) -> dict[str, Any]:
    """Train in a scratch home; the test predictions, gold labels and timings."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    register_mean_pool()
    recipe = load_recipe(recipe_path, overrides)
    assert recipe.data.test is not None and recipe.data.label_field is not None
    with tempfile.TemporaryDirectory(prefix="conveyor-compare-") as home:
        started = time.perf_counter()
        with _environment(CONVEYOR_HOME=home):
            result = dispatch.run(recipe, Settings(home=Path(home)), show_progress=False)
        wall = time.perf_counter() - started
        folder = Path(str(result.model_dir))
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        names = tuple(json.loads((folder / "label_map.json").read_text()))
    texts, labels = read_texts(recipe.data.test, recipe.data.text_field, recipe.data.label_field)
    gold = LabelMap(names).ids(labels, "test")
    data = encode_classification(tokenizer, texts, gold, recipe.model.max_length)
    started = time.perf_counter()
    predicted, _, _ = predict(model, data, batch_size=64, pad_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    return {
        "recipe": recipe_path,
        "steps": result.steps,
        "train_wall_s": round(wall, 1),
        "test_texts_per_s": round(len(texts) / seconds, 1),
        "predicted": np.asarray(predicted),
        "gold": np.asarray(gold),
        "labels": len(names),
    }


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    size = len(first["gold"])

    def accuracy(run: dict[str, Any]) -> Any:
        return lambda rows: float(np.mean(run["predicted"][rows] == run["gold"][rows]))

    def macro_f1(run: dict[str, Any]) -> Any:
        return lambda rows: _macro_f1(run["predicted"][rows], run["gold"][rows], run["labels"])

    report: dict[str, Any] = {"test_texts": size}
    for run in (first, second):
        report[run["recipe"]] = {
            "steps": run["steps"],
            "train_wall_s": run["train_wall_s"],
            "test_texts_per_s": run["test_texts_per_s"],
            "accuracy": bootstrap_interval(accuracy(run), size).as_dict(),
            "macro_f1": bootstrap_interval(macro_f1(run), size).as_dict(),
        }
    report["difference_second_minus_first"] = {
        "accuracy": paired_difference_interval(accuracy(second), accuracy(first), size).as_dict(),
        "macro_f1": paired_difference_interval(macro_f1(second), macro_f1(first), size).as_dict(),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second", nargs="?", help="left out: the first recipe's scores alone")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--set-second", dest="second_overrides", action="append", default=[])
    args = parser.parse_args()
    if args.second is None:
        run = train_and_predict(args.first, args.overrides)
        print(
            json.dumps(
                {
                    k: v
                    for k, v in compare(run, run).items()
                    if k != "difference_second_minus_first"
                },
                indent=2,
            )
        )
        return
    runs = [
        train_and_predict(args.first, args.overrides),
        train_and_predict(args.second, [*args.overrides, *args.second_overrides]),
    ]
    print(json.dumps(compare(*runs), indent=2))


if __name__ == "__main__":
    main()
