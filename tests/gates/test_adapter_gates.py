"""A LoRA version as its own small folder on a base named by hash, gated against the base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conveyor.model_folder import (
    ArtifactError,
    ModelKind,
    base_ref_for,
    load_model,
    read_manifest,
    register_model_folder,
    write_model_folder,
)
from conveyor.recipe import load_recipe
from conveyor.registry import Registry, VersionStatus
from conveyor.settings import Settings
from gates import evaluate_version
from testbed.paths import E2E_DIR
from training.lora import LoraSettings, wrap_with_lora

pytestmark = pytest.mark.integration


def _slice(source: Path, target: Path, rows: int) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[:rows]))
    return target


def _recipe(tmp_path: Path, base: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", 40), ("validation", 10), ("test", 30)):
        _slice(E2E_DIR / f"{split}.jsonl", data / f"{split}.jsonl", rows)
    golden = tmp_path / "golden.yaml"
    golden.write_text("- prompt: 'name[Aromi]'\n  must_not_include: ['As an AI model']\n")
    recipe = {
        "name": "tiny-e2e",
        "task": "causal-lm",
        "data": {
            "train": "data/train.jsonl",
            "validation": "data/validation.jsonl",
            "test": "data/test.jsonl",
            "format": "chat",
            "label_field": None,
        },
        "model": {"base": str(base), "max_length": 160},
        "training": {"lora": {"enabled": True, "r": 4, "alpha": 8}},
        "gates": {
            "bootstrap_samples": 100,
            "generation": {
                "max_prompts": 5,
                "max_new_tokens": 6,
                "batch_size": 5,
                "task_check": "e2e-facts",
                "golden": "golden.yaml",
            },
        },
    }
    path = tmp_path / "tiny-e2e.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _adapter(tiny_llama: Path) -> Any:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
    model = wrap_with_lora(AutoModelForCausalLM.from_pretrained(str(tiny_llama)), lora)
    with torch.no_grad():  # a trained adapter, as far as the format is concerned
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model.eval()


def test_adapter_folder_loads_on_its_base_and_is_gated_against_the_base(
    tiny_llama: Path,
    smollm2_tokenizer: Any,
    tmp_path: Path,
    settings: Settings,
    registry: Registry,
) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    recipe = load_recipe(_recipe(tmp_path, base))
    model = _adapter(base)
    ref, folder_of_base = base_ref_for(str(base), settings.cache_dir)
    assert folder_of_base == base and ref.hash_of == "folder"
    folder = write_model_folder(
        settings.models_dir,
        recipe.name,
        model,
        smollm2_tokenizer,
        label_names=None,
        metrics={"train_loss": 1.0},
        recipe=recipe.model_dump(mode="json"),
        lineage={"base_model": str(base), "base_sha256": ref.sha256},
        base=ref,
    )
    manifest = read_manifest(folder)
    assert manifest.kind is ModelKind.LORA_ADAPTER and manifest.base == ref
    assert not (folder / "model.safetensors").exists()
    adapter = (folder / "adapter_model.safetensors").stat().st_size
    assert adapter < (base / "model.safetensors").stat().st_size / 50

    loaded = load_model(folder, "causal-lm")
    assert loaded.kind is ModelKind.LORA_ADAPTER and loaded.task == "causal-lm"
    ids = torch.randint(3, 1000, (1, 12))
    with torch.no_grad():
        assert torch.allclose(
            loaded.model(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5
        )

    record = register_model_folder(
        registry, folder, recipe=recipe, metrics={}, data_fingerprint=None, reason="test"
    )
    outcome = evaluate_version(registry, settings, record.version, against="none")
    assert outcome.champion is not None
    assert outcome.champion.version == f"{base} (base, zero-shot)"
    assert outcome.plot_path is None and outcome.report_path.is_file()
    assert "## Where the two differ most" in outcome.report
    assert "| never" not in outcome.report  # golden case named by its index
    names = {c.name for c in outcome.verdict.checks}
    assert {"golden_suite", "max_headline_drop", "max_perplexity_increase"} <= names
    stored = registry.resolve(record.version)
    assert stored.status in (VersionStatus.EVALUATED, VersionStatus.REJECTED)
    assert stored.verdict is not None and stored.verdict["report"] == outcome.report
    assert stored.verdict["champion_zero_shot_base"] is True
    assert "test_bleu" in stored.metrics and "test_omission_rate" in stored.metrics
    saved = json.loads(outcome.json_path.read_text())
    assert saved["test_size"] == 5 and len(saved["side_by_side"]) <= 5

    (base / "config.json").write_text((base / "config.json").read_text() + " ")
    with pytest.raises(ArtifactError, match=r"does not match its registered content sha256"):
        load_model(folder, "causal-lm")
