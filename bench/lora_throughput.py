"""CPU: conveyor's LoRA path (peft on the DeepSpeed engine and our loop) against a plain loop.

    .venv/bin/python -m bench.lora_throughput [--model smollm2|tiny] [--steps 3] [--repeats 5]

Both arms train LoRA adapters (peft, r=16 on every projection, as recipes/e2e-smollm2.yaml)
on the same base weights, on the same batches of E2E chat rows (labels on assistant tokens
only), with the same AdamW, schedule and clipping, alternating runs (testbed.harness). The
baseline is the loop people write by hand around peft: collate, forward, backward, clip,
step. Reported: training tokens per second (every non-padding token of a batch) and the
ratio conveyor / plain.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from conveyor.chat import read_chat_split
from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.settings import load_settings
from testbed.harness import compare, print_comparison
from training import engine as ds
from training.checkpoints import TrainState
from training.data import Encoded, collate, epoch_batches
from training.data.chat import encode_chat
from training.loop import LoopSettings, fit
from training.lora import LoraSettings, trainable, wrap_with_lora

DATA = Path(__file__).resolve().parent.parent / "data" / "e2e_nlg" / "train.jsonl"
BATCH = 8
LR = 1e-3
SEED = 1
LORA = LoraSettings(
    r=16,
    alpha=32,
    dropout=0.0,  # no dropout: both arms then do exactly the same arithmetic
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)


def _base(model: str, cache_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    converted = resolve_pretrained(SMOLLM2, cache_dir)
    assert converted is not None
    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    torch.manual_seed(0)
    if model == "tiny":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
        )
        return LlamaForCausalLM(config), tokenizer
    return AutoModelForCausalLM.from_pretrained(str(converted.path), dtype=torch.float32), tokenizer


def _tokens(data: Encoded, batches: list[list[int]]) -> float:
    return float(sum(len(data.input_ids[i]) for batch in batches for i in batch))


def _batches(data: Encoded, epoch: int, steps: int) -> list[list[int]]:
    return epoch_batches(data.lengths, BATCH, SEED, epoch, bucket=False)[:steps]


def autocast(model: Any, precision: str) -> Any:
    """bf16 autocast on the model's device when ``precision`` is bf16, else nothing."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


def plain_loop(
    model: Any, data: Encoded, pad_id: int, steps: int, precision: str = "fp32"
) -> Callable[[], float]:
    """The hand-written baseline around peft: AdamW on the adapters, schedule, clipping."""
    device = next(model.parameters()).device
    optimizer = ds.build_optimizer(model, LR, 0.0)
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    params = trainable(model)
    epoch = [0]

    def run() -> float:
        model.train()
        batches = _batches(data, epoch[0], steps)
        for indices in batches:
            batch = {
                k: v.to(device, non_blocking=True)
                for k, v in collate(data, indices, pad_id).items()
            }
            with autocast(model, precision):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        epoch[0] += 1
        return _tokens(data, batches)

    return run


def conveyor_loop(
    model: Any, data: Encoded, pad_id: int, steps: int, precision: str = "fp32"
) -> Callable[[], float]:
    """``training.loop.fit`` on the DeepSpeed engine (ZeRO 0, one process)."""
    optimizer = ds.build_optimizer(model, LR, 0.0)
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    config = ds.deepspeed_config(
        micro_batch_size=BATCH,
        gradient_accumulation_steps=1,
        world_size=1,
        zero_stage=0,
        precision=precision,
        max_grad_norm=None,  # as fine_tune does at ZeRO 0: the loop clips (foreach)
    )
    engine = ds.initialize(model, optimizer, scheduler, config)
    tiny_validation = data.take(2)
    epoch = [0]

    def run() -> float:
        start = engine.global_steps
        state = TrainState(step=start, epoch=epoch[0])
        cfg = LoopSettings(
            total_steps=start + steps,
            batch_size=BATCH,
            seed=SEED,
            checkpoint_every=10**9,
            checkpoint_dir=None,
            bucket=False,  # the same batches as the baseline
            show_progress=False,
            clip_grad_norm=1.0,
        )
        fit(engine, data, tiny_validation, pad_id=pad_id, cfg=cfg, state=state)
        batches = _batches(data, epoch[0], steps)
        epoch[0] += 1
        return _tokens(data, batches)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load_settings()
    apply_offline_environment(settings)
    ds.ensure_distributed_env()
    base, tokenizer = _base(args.model, settings.cache_dir)
    conversations = read_chat_split(DATA)[: args.examples]
    data = encode_chat(tokenizer, conversations, 192).data
    pad_id = int(tokenizer.pad_token_id)
    ours = wrap_with_lora(copy.deepcopy(base), LORA)
    torch.manual_seed(0)
    theirs = wrap_with_lora(copy.deepcopy(base), LORA)
    theirs.load_state_dict(ours.state_dict())  # the same adapter initialisation
    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed prints; keep stdout for the figure
        result = compare(
            f"LoRA training step loop, CPU, {args.model}, same batches",
            ("conveyor (DeepSpeed + loop)", conveyor_loop(ours, data, pad_id, args.steps)),
            ("plain PyTorch + peft", plain_loop(theirs, data, pad_id, args.steps)),
            repeats=args.repeats,
            unit="tokens/s",
        )
    result.notes.update(
        model=args.model,
        examples=len(data),
        steps_per_run=args.steps,
        batch=BATCH,
        lora_r=LORA.r,
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
    )
    print_comparison(result, as_json=args.json)


if __name__ == "__main__":
    main()
