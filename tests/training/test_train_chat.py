"""`training.run` on chat data with LoRA: a lora-adapter version, gated against its base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cli._render import render_version
from conveyor.model_folder import ModelKind, load_model, read_manifest
from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from gates import evaluate_version
from serving.control.packaging import package_version
from testbed.paths import E2E_DIR
from training import checkpoint_dir
from training.dispatch import run

pytestmark = pytest.mark.integration


def _recipe(tmp_path: Path, base: Path, **training: object) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for split, rows in (("train", 64), ("validation", 16), ("test", 30)):
        lines = (E2E_DIR / f"{split}.jsonl").read_text().splitlines(keepends=True)[:rows]
        (data / f"{split}.jsonl").write_text("".join(lines))
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
        "training": {
            "max_steps": 8,
            "batch_size": 8,
            "lr": 3e-2,
            "warmup_ratio": 0.1,
            "checkpoint_every_steps": 4,
            "lora": {"enabled": True, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            **training,
        },
        "gates": {
            "bootstrap_samples": 100,
            "generation": {"max_prompts": 4, "max_new_tokens": 6, "task_check": "e2e-facts"},
        },
    }
    path = tmp_path / "tiny-e2e.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_lora_run_registers_an_adapter_version_that_is_gated_against_its_base(
    tiny_llama: Path, tmp_path: Path, settings: Settings, registry: Registry
) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    recipe = load_recipe(_recipe(tmp_path, base))
    result = run(recipe, settings, registry=registry, show_progress=False)
    assert result.version == "tiny-e2e:v1" and result.steps == 8
    assert result.model_dir is not None
    manifest = read_manifest(result.model_dir)
    assert manifest.kind is ModelKind.LORA_ADAPTER and manifest.base is not None
    assert manifest.base.name == str(base)
    lineage = json.loads((result.model_dir / "lineage.json").read_text())
    assert lineage["base_sha256"] == manifest.base.sha256
    assert not checkpoint_dir(settings, "tiny-e2e").exists()  # cleaned after registering
    loaded = load_model(result.model_dir, "causal-lm")
    assert loaded.kind is ModelKind.LORA_ADAPTER

    outcome = evaluate_version(registry, settings, "tiny-e2e:v1", against="production")
    assert outcome.verdict.champion == f"{base} (base, zero-shot)"
    shown = render_version(registry.resolve("tiny-e2e:v1"), registry.aliases("tiny-e2e"))
    assert "gate verdict:" in shown and "(base, zero-shot)" in shown
    assert str(outcome.report_path) in shown
    assert "base model:       " + str(base) in shown

    # What the flow does next: the BentoML store's copy is the registered folder, every file.
    packaged = package_version(registry, "tiny-e2e:v1", build_bento=False)
    assert "adapter_model.safetensors" in packaged.files
    assert sorted(packaged.files) == sorted(p.name for p in result.model_dir.iterdir())


def test_a_lora_run_stops_on_a_bad_chat_row_naming_file_line_and_field(
    tiny_llama: Path, tmp_path: Path, settings: Settings, registry: Registry
) -> None:
    from conveyor.chat import ChatFormatError

    path = _recipe(tmp_path, tiny_llama)
    train = tmp_path / "data" / "train.jsonl"
    rows = train.read_text().splitlines()
    broken = json.loads(rows[9])
    broken["messages"][0]["role"] = "human"
    rows[9] = json.dumps(broken)
    train.write_text("\n".join(rows) + "\n")
    with pytest.raises(ChatFormatError, match=r"train.jsonl:10: messages\[0\].role: 'human'"):
        run(load_recipe(path), settings, registry=registry, show_progress=False)
