"""E2E NLG learning curve: the shipped LoRA recipe at several step budgets, scored alike.

    .venv/bin/python -m bench.generation_curve [--recipe recipes/e2e-smollm2.yaml]
        [--steps 90 270 540] [--prompts 400]
        [--set training.lr=1e-3 ...] [--out bench/results/generation_curve.json]

For each budget, fine-tunes ``recipes/e2e-smollm2.yaml`` with ``training.max_steps`` set to it
(one validation pass, at the end; everything else as shipped, or as ``--set`` says) through
``training.fine_tune`` on the DeepSpeed engine, in a scratch home; then answers the same fixed,
seeded sample of test meaning representations greedily, as the gate does, and reports BLEU
(sacrebleu, multi-reference), ROUGE-L (rouge-score) and the fact checker's rates, each with a
95% bootstrap interval over prompts, beside the training wall time. The base model zero-shot
is the curve's point at 0 steps. The JSON is rewritten after every point (a long run that is
stopped keeps what it measured); ``--plot`` draws quality against training minutes with the
issue's aims dashed and a held-out human reference's scores dotted
(``bench.e2e_reference_ceiling``); ``--replot`` redraws from the JSON without training.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.e2e_reference_ceiling import held_out_reference_scores
from bench.generation_quality import RECIPE, _answer, _metrics
from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.recipe import Recipe, load_recipe
from conveyor.settings import Settings, load_settings
from gates.bootstrap import bootstrap_interval
from gates.chat.evaluate import GenerationRun
from gates.chat.test_set import PromptGroup, read_prompt_groups
from gates.plugins import checker_for
from training import fine_tune

AIMS = {"bleu": 0.55, "rouge_l": 0.60, "fact_error_rate": 0.10}
SHOWN = ("bleu", "rouge_l", "chrf", "omission_rate", "hallucination_rate", "fact_error_rate")


def budget_overrides(steps: int) -> list[str]:
    """The recipe's settings for a run of ``steps`` optimizer steps, validated once at the end."""
    return [
        f"training.max_steps={steps}",
        f"training.eval_every_steps={steps}",
        f"training.checkpoint_every_steps={steps}",
    ]


def _point(run: GenerationRun, samples: int, **training: Any) -> dict[str, Any]:
    """One point of the curve: what trained it, and the answers' scores with their intervals."""
    size = len(run.answers)
    return {
        **training,
        "generate_s": run.seconds.get("generate_s"),
        "metrics": {
            name: bootstrap_interval(metric, size, samples=samples).as_dict()
            for name, metric in _metrics(run).items()
        },
        "examples": run.answers[:4],
    }


def _train_and_answer(
    recipe: Recipe, groups: list[PromptGroup], cache_dir: Path, samples: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="conveyor-curve-") as home:
        started = time.perf_counter()
        result = fine_tune(recipe, Settings(home=Path(home), cache_dir=cache_dir))
        wall = time.perf_counter() - started
        assert result.model_dir is not None
        name = f"{result.steps} steps"
        run = _answer(name, result.model_dir, groups, recipe, cache_dir, reference_loss=False)
    return _point(
        run,
        samples,
        steps=result.steps,
        train_samples=result.steps * recipe.training.batch_size,
        train_wall_s=round(wall, 1),
        train_seconds=round(result.metrics.get("train_seconds", wall), 1),
        train_loss=result.metrics.get("train_loss"),
        validation_loss=result.metrics.get("validation_loss"),
    )


def _base_point(
    recipe: Recipe, groups: list[PromptGroup], cache_dir: Path, samples: int
) -> dict[str, Any]:
    converted = resolve_pretrained(SMOLLM2, cache_dir)
    assert converted is not None
    run = _answer("base zero-shot", converted.path, groups, recipe, cache_dir, reference_loss=False)
    return _point(run, samples, steps=0, train_samples=0, train_wall_s=0.0, train_seconds=0.0)


def markdown_table(points: list[dict[str, Any]]) -> str:
    """One row per budget: the estimates with their 95% intervals, and the training time."""
    head = "| steps (x8 rows) | training (min) | " + " | ".join(SHOWN) + " |"
    lines = [head, "|" + "---|" * (len(SHOWN) + 2)]
    for point in points:
        cells = []
        for name in SHOWN:
            m = point["metrics"][name]
            cells.append(f"{m['estimate']:.3f} [{m['low']:.3f}, {m['high']:.3f}]")
        minutes = point["train_seconds"] / 60
        lines.append(f"| {point['steps']} | {minutes:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(
    points: list[dict[str, Any]],
    human: dict[str, Any],
    path: Path,
    aims: dict[str, float],
    title: str = "E2E test, 400 prompts",
) -> None:
    """Quality against training minutes, intervals as error bars, aims dashed, humans dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    minutes = [p["train_seconds"] / 60 for p in points]
    panels = (("bleu", "rouge_l", "chrf"), ("fact_error_rate", "omission_rate"))
    for axis, names in zip(axes, panels, strict=True):
        for name in names:
            rows = [p["metrics"][name] for p in points]
            estimate = [r["estimate"] for r in rows]
            errors = [
                [e - r["low"] for e, r in zip(estimate, rows, strict=True)],
                [r["high"] - e for e, r in zip(estimate, rows, strict=True)],
            ]
            line = axis.errorbar(minutes, estimate, yerr=errors, marker="o", capsize=3, label=name)
            colour = line[0].get_color()
            if name in aims:
                axis.axhline(aims[name], linestyle="--", color=colour, alpha=0.6)
            axis.axhline(human[name], linestyle=":", color=colour, alpha=0.9)
        axis.set_xlabel("training minutes on 2 CPU cores (LoRA r=16, batch 8)")
        axis.set_ylim(0, 1)
        axis.legend()
    axes[0].set_title("text quality", fontsize=10)
    axes[1].set_title("share of outputs with fact errors", fontsize=10)
    figure.suptitle(
        f"{title}; {'dashed: the issue aims; ' if aims else ''}dotted: a held-out human reference",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="a causal-lm chat recipe")
    parser.add_argument("--steps", type=int, nargs="+", default=[90, 270, 540])
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-base", action="store_true", help="skip the zero-shot point")
    parser.add_argument("--out", type=Path, default=Path("bench/results/generation_curve.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/results/generation_curve.png"))
    parser.add_argument("--replot", action="store_true", help="redraw from --out, train nothing")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.out.read_text())
        print(markdown_table(saved["points"]))
        aims = AIMS if args.recipe == RECIPE else {}
        title = f"{args.recipe.stem} test, {saved['prompts']} prompts"
        plot(saved["points"], saved["human_reference_held_out"], args.plot, aims, title)
        return
    settings = load_settings()
    apply_offline_environment(settings)
    recipe = load_recipe(args.recipe, args.overrides)
    generation = recipe.gates.generation
    checker = checker_for(generation.task_check)
    assert checker is not None, f"{args.recipe}: the curve needs a task_check plug-in"
    groups = read_prompt_groups(recipe.data.test or recipe.data.validation, args.prompts, 0)
    report: dict[str, Any] = {
        "recipe": str(args.recipe.name),
        "overrides": args.overrides,
        "prompts": len(groups),
        "cpu_count": os.cpu_count(),
        "human_reference_held_out": held_out_reference_scores(groups, generation.language, checker),
        "points": [],
    }
    points: list[dict[str, Any]] = report["points"]
    if not args.no_base:
        points.append(_base_point(recipe, groups, settings.cache_dir, args.samples))
        args.out.write_text(json.dumps(report, indent=2))
    for steps in args.steps:
        budget = load_recipe(args.recipe, [*args.overrides, *budget_overrides(steps)])
        points.append(_train_and_answer(budget, groups, settings.cache_dir, args.samples))
        args.out.write_text(json.dumps(report, indent=2))
        print(markdown_table(points), flush=True)
    aims = AIMS if args.recipe == RECIPE else {}
    title = f"{recipe.name} test, {len(groups)} prompts"
    plot(points, report["human_reference_held_out"], args.plot, aims, title)
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
