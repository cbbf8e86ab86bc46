"""LoRA on chat data through the DeepSpeed engine and conveyor's loop: learns, resumes exactly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.chat import read_chat_split
from testbed.paths import E2E_DIR
from training import engine as ds
from training.checkpoints import TrainState, load_checkpoint
from training.data import Encoded
from training.data.chat import encode_chat
from training.loop import FitResult, LoopSettings, fit
from training.lora import LoraSettings, trainable, wrap_with_lora

pytestmark = pytest.mark.integration

LORA = LoraSettings(
    r=8,
    alpha=16,
    dropout=0.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)


@pytest.fixture(scope="module")
def chat_data(smollm2_tokenizer: Any) -> tuple[Encoded, Encoded]:
    train = read_chat_split(E2E_DIR / "train.jsonl")[:48]
    validation = read_chat_split(E2E_DIR / "validation.jsonl")[:16]
    return (
        encode_chat(smollm2_tokenizer, train, 160).data,
        encode_chat(smollm2_tokenizer, validation, 160, "validation").data,
    )


def _engine(model: Any, total: int) -> Any:
    ds.ensure_distributed_env()
    optimizer = ds.build_optimizer(model, 5e-2, 0.0)
    scheduler = ds.build_scheduler(optimizer, total, 0.1)
    config = ds.deepspeed_config(
        micro_batch_size=8,
        gradient_accumulation_steps=1,
        world_size=1,
        zero_stage=0,
        precision="fp32",
        max_grad_norm=None,
    )
    return ds.initialize(model, optimizer, scheduler, config)


def _fit(
    engine: Any,
    data: tuple[Encoded, Encoded],
    total: int,
    folder: Path | None,
    state: TrainState,
    pad: int,
) -> FitResult:
    cfg = LoopSettings(
        total_steps=total,
        batch_size=8,
        seed=3,
        checkpoint_every=4,
        checkpoint_dir=folder,
        show_progress=False,
        clip_grad_norm=1.0,
    )
    return fit(engine, data[0], data[1], pad_id=pad, cfg=cfg, state=state)


def _lora_model(tiny_llama: Path) -> Any:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return wrap_with_lora(AutoModelForCausalLM.from_pretrained(str(tiny_llama)), LORA)


def test_lora_learns_the_assistant_turns_and_leaves_the_base_alone(
    tiny_llama: Path, chat_data: tuple[Encoded, Encoded], smollm2_tokenizer: Any
) -> None:
    from training.metrics import evaluate

    model = _lora_model(tiny_llama)
    pad = smollm2_tokenizer.pad_token_id
    before = evaluate(model, chat_data[1], batch_size=8, pad_id=pad)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    engine = _engine(model, 12)
    optimized = {id(p) for g in engine.optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in trainable(model)}  # only the adapters are stepped
    result = _fit(engine, chat_data, 12, None, TrainState(), pad)
    assert result.metrics["loss"] < before["loss"] - 0.1
    assert result.metrics["perplexity"] < before["perplexity"]
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name


def test_an_interrupted_lora_run_resumes_to_the_same_loss(
    tiny_llama: Path, chat_data: tuple[Encoded, Encoded], smollm2_tokenizer: Any, tmp_path: Path
) -> None:
    pad = smollm2_tokenizer.pad_token_id
    base = _lora_model(tiny_llama)
    straight = _fit(_engine(copy.deepcopy(base), 10), chat_data, 10, None, TrainState(), pad)

    folder = tmp_path / "checkpoints"
    _fit(_engine(copy.deepcopy(base), 10), chat_data, 6, folder, TrainState(), pad)
    assert (folder / "latest").read_text().strip() == "step-00000004"
    engine = _engine(copy.deepcopy(base), 10)
    state, _ = load_checkpoint(engine, folder)
    assert state.step == 4
    resumed = _fit(engine, chat_data, 10, folder, state, pad)
    assert resumed.state.step == 10
    assert resumed.metrics["loss"] == pytest.approx(straight.metrics["loss"], rel=1e-5)
