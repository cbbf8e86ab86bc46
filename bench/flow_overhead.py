"""Orchestration overhead: the retrain flow against the same stage functions called directly.

Both arms do the same work on the same tiny model and data slice, each repetition in a
fresh CONVEYOR_HOME (so nothing is cached): data checks and reports, the DeepSpeed
fine-tune, evaluation and gates, packaging (model store + Bento), promotion. The flow
arm runs against an already running Prefect server; its start-up is reported apart.

    .venv/bin/python -m bench.flow_overhead [--repeats 3] [--epochs 4]
    .venv/bin/python -m bench.flow_overhead --recipe recipes/clinc150-minilm.yaml \
        --set training.max_steps=400 --repeats 1        # the demo's workload

Both arms first run the timed pipeline once untimed (imports, the first flow in the process,
the first load of the base model, the BentoML store's first copy of the model), then
``--repeats`` times each, interleaved.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

from conveyor.offline import apply_offline_environment
from conveyor.recipe import load_recipe
from conveyor.registry import open_registry
from conveyor.settings import Settings, load_settings
from testbed.clinc import write_slice
from testbed.harness import compare, print_comparison
from testbed.tiny_models import write_tiny_bert


def _recipe(root: Path, epochs: int) -> Path:
    write_slice("train", 100, root / "train.jsonl")
    write_slice("validation", 20, root / "validation.jsonl")
    write_slice("test", 30, root / "test.jsonl")
    recipe = {
        "name": "bench-intents",
        "task": "classification",
        "data": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "model": {"base": str(write_tiny_bert(root / "bert")), "max_length": 32},
        "training": {"epochs": epochs, "batch_size": 16, "lr": 3.0e-3, "seed": 5},
        "gates": {"min_accuracy": 0.3},
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _fresh_home(root: Path) -> Settings:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=root))
    os.environ["CONVEYOR_HOME"] = str(home)
    return load_settings()


def _direct(recipe_path: Path, root: Path, overrides: list[str] | None = None) -> float:
    """The stages one after the other, as plain function calls."""
    import data_checks
    from gates import evaluate_version
    from serving.control.packaging import package_version
    from serving.control.rollout import promote
    from training import fine_tune

    settings = _fresh_home(root)
    registry = open_registry(settings)
    recipe = load_recipe(recipe_path, overrides or [])
    report = data_checks.validate_recipe(recipe)
    data_checks.write_reports(report, settings.home / "reports")
    version = fine_tune(recipe, settings, show_progress=False, registry=registry).version
    assert version is not None
    outcome = evaluate_version(registry, settings, version)
    assert outcome.verdict.passed, outcome.verdict.reason
    package_version(registry, version)
    promote(registry, version, canary_percent=0)
    return 1.0


def _flow(recipe_path: Path, root: Path, overrides: list[str] | None = None) -> float:
    from flows.retrain import retrain

    _fresh_home(root)
    outcome = retrain(str(recipe_path), overrides=overrides or None)
    assert outcome["promoted"], outcome
    return 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--recipe", type=Path, help="time this recipe instead of the tiny one")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-flow-"))
    settings = Settings(home=root / "server-home")
    apply_offline_environment(settings)
    os.environ["TQDM_DISABLE"] = "1"
    from flows.server import ensure_prefect_server, stop_prefect_server

    started = time.perf_counter()
    server = ensure_prefect_server(settings, port=4291)
    startup = time.perf_counter() - started
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tiny = _recipe(root, args.epochs)
    timed, sets = (args.recipe.resolve(), args.overrides) if args.recipe else (tiny, [])
    title = f"{timed.name} {' '.join(sets)}" if args.recipe else "tiny BERT"
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            result = compare(
                f"orchestration: retrain flow vs the same stages called directly ({title})",
                ("Prefect retrain flow", lambda: _flow(timed, root, sets)),
                ("stage functions directly", lambda: _direct(timed, root, sets)),
                repeats=args.repeats,
                unit="runs/s",
            )
    finally:
        stop_prefect_server(settings)
    overhead = result.arm.median_seconds / result.baseline.median_seconds - 1
    result.notes["overhead (flow / direct - 1)"] = f"{overhead:+.1%}"
    result.notes["fixed cost (flow - direct)"] = (
        f"{result.arm.median_seconds - result.baseline.median_seconds:+.2f} s per run"
    )
    result.notes["Prefect server start-up (once)"] = f"{startup:.1f} s"
    print_comparison(result, as_json=args.json)


if __name__ == "__main__":
    main()
