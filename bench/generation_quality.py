"""E2E NLG quality: SmolLM2-135M-Instruct zero-shot against its LoRA fine-tune, same prompts.

    .venv/bin/python -m bench.generation_quality --train [--prompts 400] [--json]
    .venv/bin/python -m bench.generation_quality --version e2e-smollm2:v1 [--prompts 400]

``--train`` first fine-tunes ``recipes/e2e-smollm2.yaml`` as shipped (its CPU budget) with
``training.run`` and registers the version (in ``CONVEYOR_HOME``); ``--version`` judges one
trained earlier. Both models answer the same fixed, seeded sample of test meaning
representations greedily (``--prompts``, default 400 of the 1,847); reported per model:
multi-reference BLEU (sacrebleu) and ROUGE-L (rouge-score, best reference), each with a
95% bootstrap interval over prompts, the fact checker's omission / hallucination / any-error
rates, and the paired interval of the fine-tune's gain on each metric.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from conveyor.model_folder import load_model
from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.recipe import load_recipe
from conveyor.registry import open_registry
from conveyor.settings import load_settings
from gates.bootstrap import bootstrap_interval, paired_difference_interval
from gates.chat.evaluate import GenerationRun, run_generation
from gates.chat.test_set import read_prompt_groups
from gates.plugins.e2e_facts import fact_rates

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "e2e-smollm2.yaml"
Indices = npt.NDArray[np.int64]


def _per_prompt_errors(run: GenerationRun) -> dict[str, npt.NDArray[np.float64]]:
    assert run.facts is not None
    return {
        "omission_rate": np.asarray([bool(f.omitted) for f in run.facts], dtype=float),
        "hallucination_rate": np.asarray([f.hallucinated for f in run.facts], dtype=float),
        "fact_error_rate": np.asarray([not f.correct for f in run.facts], dtype=float),
    }


def _metrics(run: GenerationRun) -> dict[str, Callable[[Indices], float]]:
    assert run.scores is not None
    scores = run.scores
    found: dict[str, Callable[[Indices], float]] = {
        "bleu": lambda rows: scores.bleu(rows),
        "rouge_l": lambda rows: scores.mean_rouge_l(rows),
        "chrf": lambda rows: scores.chrf(rows),
    }
    for name, values in _per_prompt_errors(run).items():
        found[name] = _mean_of(values)
    return found


def _mean_of(values: npt.NDArray[np.float64]) -> Callable[[Indices], float]:
    return lambda rows: float(values[rows].mean())


def _summary(candidate: GenerationRun, base: GenerationRun, samples: int) -> dict[str, Any]:
    size = len(candidate.answers)
    ours, theirs = _metrics(candidate), _metrics(base)
    table: dict[str, Any] = {}
    for name in ours:
        table[name] = {
            "base": bootstrap_interval(theirs[name], size, samples=samples).as_dict(),
            "fine_tune": bootstrap_interval(ours[name], size, samples=samples).as_dict(),
            "gain": paired_difference_interval(
                ours[name], theirs[name], size, samples=samples
            ).as_dict(),
        }
    assert candidate.facts is not None and base.facts is not None
    table["slot_errors_by_slot"] = {
        "base": fact_rates(base.facts).by_slot,
        "fine_tune": fact_rates(candidate.facts).by_slot,
    }
    return table


def _train(settings: Any) -> str:
    from training.dispatch import run

    recipe = load_recipe(RECIPE)
    registry = open_registry(settings)
    started = time.perf_counter()
    result = run(recipe, settings, registry=registry, show_progress=False)
    print(f"trained {result.version} in {time.perf_counter() - started:.0f} s")
    assert result.version is not None
    return result.version


def _answer(
    name: str,
    folder: Path,
    groups: Any,
    recipe: Any,
    cache_dir: Path,
    *,
    reference_loss: bool = True,
) -> GenerationRun:
    loaded = load_model(folder, "causal-lm", cache_dir=cache_dir)
    model = (
        loaded.model.merge_and_unload()
        if hasattr(loaded.model, "merge_and_unload")
        else loaded.model
    )
    started = time.perf_counter()
    run = run_generation(
        name,
        model,
        loaded.tokenizer,
        groups,
        generation=recipe.gates.generation,
        max_length=recipe.model.max_length,
        reference_loss=reference_loss,
    )
    run.seconds["total_s"] = round(time.perf_counter() - started, 1)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--train", action="store_true", help="fine-tune the shipped recipe first")
    which.add_argument("--version", help="a trained version, e.g. e2e-smollm2:v1")
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--examples", type=int, default=6, help="answers printed per model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    apply_offline_environment(settings)
    version = _train(settings) if args.train else args.version
    record = open_registry(settings).resolve(version)
    recipe = load_recipe(RECIPE)
    groups = read_prompt_groups(recipe.data.test or recipe.data.validation, args.prompts, 0)
    converted = resolve_pretrained(SMOLLM2, settings.cache_dir)
    assert converted is not None and record.artifact_uri is not None
    base = _answer("base zero-shot", converted.path, groups, recipe, settings.cache_dir)
    tuned = _answer(record.version, Path(record.artifact_uri), groups, recipe, settings.cache_dir)
    result: dict[str, Any] = {
        "version": record.version,
        "prompts": len(groups),
        "base_gguf_sha256": converted.source_sha256,
        "metrics": _summary(tuned, base, args.samples),
        "seconds": {"base": base.seconds, "fine_tune": tuned.seconds},
        "train_metrics": {k: v for k, v in record.metrics.items() if k.startswith("train_")},
        "examples": [
            {"mr": g.last_user_text.split(": ", 1)[-1], "base": b, "fine_tune": t}
            for g, b, t in list(zip(groups, base.answers, tuned.answers, strict=True))[
                : args.examples
            ]
        ],
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(f"## E2E NLG, {len(groups)} test MRs: base zero-shot vs {record.version}")
    for name, row in result["metrics"].items():
        if name == "slot_errors_by_slot":
            continue
        b, f, g = row["base"], row["fine_tune"], row["gain"]
        print(
            f"{name:>20}: base {b['estimate']:.3f} [{b['low']:.3f}, {b['high']:.3f}]  "
            f"fine-tune {f['estimate']:.3f} [{f['low']:.3f}, {f['high']:.3f}]  "
            f"gain {g['estimate']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
        )
    print(f"{'slot errors':>20}: {result['metrics']['slot_errors_by_slot']}")
    print(f"{'seconds':>20}: {result['seconds']}")
    for example in result["examples"]:
        print(f"- {example['mr']}\n    base: {example['base']}\n    tuned: {example['fine_tune']}")


if __name__ == "__main__":
    main()
