"""The real fine-tune on a tiny BERT and GPT-2: DeepSpeed steps, model folder, registry."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch

from conveyor.model_folder import content_sha256, read_manifest
from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.serving_spec import ServingSpec
from conveyor.settings import Settings
from conveyor.splits import fingerprint_splits
from testbed.paths import RECIPES_DIR
from tests.training.conftest import DIST_VARS, LABELS, RecipeFactory
from training import NonFiniteLossError, checkpoint_dir, evaluate, fine_tune
from training.checkpoints import latest_checkpoint
from training.data import LabelMap, encode_classification, read_texts

pytestmark = pytest.mark.integration


def test_fine_tune_writes_a_model_folder_and_registers_it(
    make_recipe: RecipeFactory, settings: Settings, registry: Registry
) -> None:
    recipe = load_recipe(make_recipe())
    result = fine_tune(recipe, settings, show_progress=False, registry=registry)

    assert result.version == "tiny-clinc:v1" and result.steps == 40
    record = registry.resolve("tiny-clinc:v1")
    assert record.status == "trained"
    assert record.data_fingerprint == fingerprint_splits(recipe.data.splits())
    assert record.artifact_uri == str(result.model_dir)
    assert record.metrics["train_samples"] == 320
    assert record.metrics["validation_accuracy"] >= 0.45, record.metrics  # chance: 0.25

    folder = Path(str(result.model_dir))
    assert folder.parent == settings.models_dir / "tiny-clinc"
    assert record.content_sha256 == content_sha256(folder)
    assert record.serving_spec == ServingSpec.from_recipe(recipe).as_record()
    assert read_manifest(folder).kind == "classifier" and not read_manifest(folder).inferred
    for name in ("model.safetensors", "config.json", "tokenizer.json", "label_map.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "label_map.json").read_text()) == {
        name: i for i, name in enumerate(sorted(LABELS))
    }
    assert json.loads((folder / "lineage.json").read_text())["data_fingerprint"] == (
        record.data_fingerprint
    )
    assert (
        load_recipe(make_recipe()).model_dump(mode="json")["training"]
        == (__import__("yaml").safe_load((folder / "recipe.yaml").read_text())["training"])
    )
    assert not checkpoint_dir(settings, "tiny-clinc").exists(), "checkpoints left behind"

    # The folder alone reproduces the validation figures.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts, labels = read_texts(recipe.data.validation, "text", "label")
    ids = LabelMap(tuple(sorted(LABELS))).ids(labels, "validation")
    data = encode_classification(tokenizer, texts, ids, 32)
    again = evaluate(model, data, batch_size=16, pad_id=tokenizer.pad_token_id)
    assert again["accuracy"] == pytest.approx(record.metrics["validation_accuracy"])
    assert again["loss"] == pytest.approx(record.metrics["validation_loss"], rel=1e-4)


def test_gradient_accumulation_halves_the_optimizer_steps(
    make_recipe: RecipeFactory, settings: Settings, registry: Registry
) -> None:
    path = make_recipe(training={"gradient_accumulation_steps": 2, "epochs": 1})
    for key in DIST_VARS:  # a process not started by a launcher
        os.environ.pop(key, None)
    result = fine_tune(load_recipe(path), settings, show_progress=False, registry=registry)
    assert result.steps == 10
    assert result.metrics["train_samples"] == 160
    # the rank and rendezvous port it set for itself are not left for its children to inherit
    assert [key for key in DIST_VARS if key in os.environ] == []


def test_early_stopping_stops_when_validation_stops_improving(
    make_recipe: RecipeFactory, settings: Settings, registry: Registry
) -> None:
    path = make_recipe(
        training={"lr": 1.0e-9, "epochs": 4, "eval_every_steps": 5, "early_stopping_patience": 1}
    )
    result = fine_tune(load_recipe(path), settings, show_progress=False, registry=registry)
    assert result.stopped_early
    assert result.steps == 10
    assert [h["step"] for h in result.history] == [5.0, 10.0]


def test_an_evaluation_at_the_last_step_is_the_final_one_not_run_twice(
    make_recipe: RecipeFactory,
    settings: Settings,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import training.loop

    passes: list[int] = []
    real = training.loop.evaluate

    def counted(*args: object, **kwargs: object) -> dict[str, float]:
        passes.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(training.loop, "evaluate", counted)
    path = make_recipe(training={"max_steps": 10, "eval_every_steps": 5})
    result = fine_tune(load_recipe(path), settings, show_progress=False, registry=registry)
    assert len(passes) == 2, "steps 5 and 10; the final metrics are step 10's"
    assert [h["step"] for h in result.history] == [5.0, 10.0]
    assert result.metrics["validation_loss"] == result.history[-1]["loss"]


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    make_recipe: RecipeFactory, settings: Settings, registry: Registry
) -> None:
    # An absurd weight decay makes decoupled decay multiply the weights by ~-1000 per step:
    # they overflow float32 within a few steps and the loss turns NaN.
    path = make_recipe(
        training={
            "lr": 0.05,
            "weight_decay": 20000.0,
            "warmup_ratio": 0.5,
            "checkpoint_every_steps": 3,
        }
    )
    with pytest.raises(NonFiniteLossError) as caught:
        fine_tune(load_recipe(path), settings, show_progress=False, registry=registry)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert f"loss became nan at step {error.step}" in message
    assert "lower training.lr or training.weight_decay" in message
    kept = latest_checkpoint(checkpoint_dir(settings, "tiny-clinc"))
    assert kept is not None and error.checkpoint == kept
    assert str(kept) in message
    assert kept.name == f"step-{(error.step - 1) // 3 * 3:08d}"
    weights = torch.load(kept / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert registry.list_versions("tiny-clinc") == []


def test_tiny_gpt2_causal_lm(tmp_path: Path, settings: Settings, registry: Registry) -> None:
    recipe = load_recipe(
        RECIPES_DIR / "tiny-shakespeare-gpt2.yaml",
        [
            "training.max_steps=6",
            "training.batch_size=4",
            "model.max_length=64",
            "model.config={n_layer: 1, n_head: 2, n_embd: 32, vocab_size: 512}",
        ],
    )
    result = fine_tune(recipe, settings, show_progress=False, registry=registry)
    assert result.version == "tiny-shakespeare-gpt2:v1"
    assert result.metrics["validation_perplexity"] > 1
    folder = Path(str(result.model_dir))
    assert (folder / "tokenizer.json").is_file() and not (folder / "label_map.json").exists()
    assert read_manifest(folder).kind == "causal-lm"
    assert registry.resolve(result.version).serving_spec["max_length"] == 64
    config = json.loads((folder / "config.json").read_text())
    assert config["n_layer"] == 1 and config["vocab_size"] == 512


@pytest.mark.parametrize("infra", ["zero1.json", "zero2.json"])
def test_infra_deepspeed_config_runs_zero_stages_on_cpu(
    infra: str,
    make_recipe: RecipeFactory,
    settings: Settings,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from testbed.paths import REPO_ROOT
    from training.engine import read_config_file

    extra = read_config_file(REPO_ROOT / "infra" / "deepspeed" / infra)
    path = make_recipe(training={"max_steps": 6, "checkpoint_every_steps": 3})
    with caplog.at_level(logging.INFO, logger="training"):
        result = fine_tune(
            load_recipe(path),
            settings,
            show_progress=False,
            registry=registry,
            deepspeed_config=extra,
        )
    stage = extra["zero_optimization"]["stage"]
    assert any(f"fp32, ZeRO {stage}" in r.getMessage() for r in caplog.records)
    assert result.steps == 6 and result.version == "tiny-clinc:v1"
    assert math.isfinite(result.metrics["validation_loss"])
    assert (Path(str(result.model_dir)) / "model.safetensors").is_file()


def test_a_compiled_fine_tune_trains_saves_and_loads_like_an_eager_one(
    make_recipe: RecipeFactory, settings: Settings, registry: Registry
) -> None:
    """``training.compile``: the engine's module goes through torch.compile (inductor, on the
    CPU here too); the folder it writes has the eager model's keys and loads to serve."""
    from torch._dynamo.utils import counters

    from conveyor.model_folder import load_model

    counters.clear()
    path = make_recipe(training={"max_steps": 6, "eval_every_steps": 3, "compile": True})
    result = fine_tune(load_recipe(path), settings, show_progress=False, registry=registry)
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    assert result.steps == 6 and math.isfinite(result.metrics["train_loss"]), result.metrics
    loaded = load_model(result.model_dir, "classification")
    assert not any("_orig_mod" in name for name, _ in loaded.model.named_parameters())
    record = registry.resolve(result.version or "")
    assert record.recipe["training"]["compile"] is True


def test_the_log_says_what_happens_with_elapsed_time_and_eta(
    make_recipe: RecipeFactory,
    settings: Settings,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No silent engine start, and every step line says how far along and how long is left."""
    from training.engine import ENGINE_START

    path = make_recipe(training={"max_steps": 4})
    with caplog.at_level(logging.INFO, logger="training"):
        fine_tune(load_recipe(path), settings, show_progress=True, registry=registry)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(f"{ENGINE_START} (usually up to") for line in lines), lines
    assert any(line.startswith(f"{ENGINE_START}: done in") for line in lines), lines
    steps = [line for line in lines if line.startswith("step ") and "loss" in line]
    assert steps and steps[-1].startswith("step 4/4 (100%), "), steps
    assert all(" elapsed, ETA " in line for line in steps), steps


def test_an_empty_latest_pointer_names_no_checkpoint(tmp_path: Path) -> None:
    """A run killed while DeepSpeed rewrote `latest` leaves it empty: that is no checkpoint,
    not the checkpoint folder itself."""
    (tmp_path / "step-00000007").mkdir()
    (tmp_path / "latest").write_text("")
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "latest").write_text("step-00000007\n")
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000007"
