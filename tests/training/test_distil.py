"""Distillation on real tiny models: students start from every other layer of their teacher,
learn from its softened logits on the DeepSpeed engine, become versions judged against the
teacher; a student as large as its teacher, or of another vocabulary, is refused; a run
killed mid-way resumes from its checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conveyor.recipe import load_recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from flows.compress import distil_and_judge
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT
from tests.training.conftest import subprocess_env
from training import DistillationError, distil_version, fine_tune, parse_student
from training.distil import Distiller, DistilSettings, every_other_layer, student_from

DEPLOYMENT = "tiny-distil"


def test_the_student_keeps_every_other_layer() -> None:
    assert every_other_layer(6, 3) == [0, 2, 4]
    assert every_other_layer(30, 15) == list(range(0, 30, 2))
    with pytest.raises(DistillationError, match="smaller than its teacher"):
        every_other_layer(6, 6)
    assert parse_student("layers=3") == 3
    with pytest.raises(DistillationError, match="write layers=K"):
        parse_student("depth=3")


def test_a_llama_student_starts_from_its_teacher_and_learns_its_logits() -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=4, intermediate_size=32,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    teacher = AutoModelForCausalLM.from_config(config).eval()
    student = student_from(teacher, 2)
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    kept = student.model.layers[1].mlp.up_proj.weight
    assert torch.equal(kept, teacher.model.layers[2].mlp.up_proj.weight)
    assert kept.data_ptr() != teacher.model.layers[2].mlp.up_proj.weight.data_ptr()
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    student.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)  # KV cache

    distiller = Distiller(student, teacher, DistilSettings(2, temperature=2.0, alpha=1.0)).train()
    assert all(name.startswith("student.") for name, _ in distiller.named_parameters())
    ids = torch.randint(0, 64, (4, 12))
    labels = ids.clone()
    labels[:, :6] = -100  # the prompt: no loss
    optimizer = torch.optim.AdamW(distiller.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = distiller(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(p.grad is None for p in teacher.parameters())


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-layer hidden-32 BERT fine-tuned on four CLINC intents, registered."""
    from transformers import BertConfig, BertModel

    from testbed.tiny_models import minilm_tokenizer

    root = tmp_path_factory.mktemp("distil")
    tokenizer = minilm_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    write_slice("train", 100, root / "train.jsonl")
    write_slice("validation", 20, root / "validation.jsonl")
    write_slice("test", 30, root / "test.jsonl")
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {s: str(root / f"{s}.jsonl") for s in ("train", "validation", "test")},
        "model": {"base": str(root / "base"), "max_length": 32},
        "training": {"batch_size": 16, "lr": 3.0e-3, "warmup_ratio": 0.1, "epochs": 3},
        "gates": {"min_accuracy": 0.3, "bootstrap_samples": 200},
        "compress": {"distil": {"max_headline_drop": 0.5}},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    settings = Settings(home=root / "home", actor="pytest")
    registry = Registry.from_url(settings.registry_url, actor="pytest")
    trained = fine_tune(
        load_recipe(root / "recipe.yaml"), settings, show_progress=False, registry=registry
    )
    assert trained.version is not None
    return {"root": root, "settings": settings, "registry": registry, "version": trained.version}


@pytest.mark.integration
def test_a_student_is_distilled_registered_with_lineage_and_judged(teacher: dict[str, Any]) -> None:
    registry: Registry = teacher["registry"]
    outcome = distil_and_judge(
        registry,
        teacher["settings"],
        teacher["version"],
        layers=2,
        overrides=["training.epochs=2"],
        against="none",
    )
    student = registry.resolve(outcome.version)
    assert student.metrics["distilled_from"] == teacher["version"]
    assert student.metrics["student_layers"] == 2 and student.metrics["teacher_layers"] == 4
    assert student.recipe["compress"]["distil"]["layers"] == 2
    assert outcome.parity.verdict.champion == teacher["version"]
    checks = {c.name for c in outcome.parity.verdict.checks}
    assert "max_headline_drop" in checks, outcome.parity.report
    assert outcome.passed, outcome.parity.report
    sizes = (outcome.parity.candidate.metrics, outcome.parity.champion.metrics)  # type: ignore[union-attr]
    assert sizes[0]["model_size_mb"] < sizes[1]["model_size_mb"]


@pytest.mark.integration
def test_a_student_as_large_as_its_teacher_or_of_another_vocabulary_is_refused(
    teacher: dict[str, Any], tiny_llama: Path
) -> None:
    registry, settings = teacher["registry"], teacher["settings"]
    with pytest.raises(DistillationError, match=r"smaller than its teacher .*\(4 layers\)"):
        distil_version(registry, settings, teacher["version"], layers=4)
    with pytest.raises(DistillationError) as refused:
        distil_version(
            registry, settings, teacher["version"], layers=2,
            overrides=[f"model.base={tiny_llama}"],
        )  # fmt: skip
    message = str(refused.value)
    assert f"({tiny_llama}: 49,152 tokens)" in message
    assert f"({teacher['version']}: 30,522 tokens)" in message


@pytest.mark.integration
def test_a_distil_run_killed_mid_way_resumes_from_its_checkpoint(teacher: dict[str, Any]) -> None:
    env = {**subprocess_env(teacher["settings"].home), "OMP_NUM_THREADS": "1"}
    # the resume is under test, not the verdict: no per-class floor for this tiny student
    command = [sys.executable, "-m", "conveyor", "distil", teacher["version"], "--student",
               "layers=2", "--against", "none", "--set", "training.max_steps=60",
               "--set", "training.checkpoint_every_steps=10",
               "--set", "gates.max_class_f1_drop=1.0"]  # fmt: skip
    checkpoints = teacher["settings"].home / "checkpoints" / DEPLOYMENT
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 600  # shared cores: starting the engine may take minutes
    while not (checkpoints / "latest").is_file() and time.monotonic() < deadline:  # complete
        assert process.poll() is None, process.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert list(checkpoints.glob("step-*")), "no checkpoint before the kill"

    resumed = subprocess.run([*command, "--resume"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    found = re.search(r"resumed from \S*step-\d+ \(step (\d+)", resumed.stderr)
    assert found and int(found.group(1)) >= 10, resumed.stderr[-2000:]
    student = teacher["registry"].resolve(resumed.stdout.strip().splitlines()[-1])
    assert student.metrics["train_steps"] == 60 and student.metrics["distilled_from"]
