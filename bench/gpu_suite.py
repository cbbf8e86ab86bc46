"""GPU: conveyor's training and serving paths on one accelerator, one table (issue 17).

    python -m bench.gpu_suite [--rows 1 2 3 4] [--minilm DIR] [--quick] [--out DIR]

Rows (each arm against its baseline interleaved in one run, testbed.harness):
1. BERT-base (from its config, random init), seq 128, batch 256, bf16: conveyor's DeepSpeed
   engine and step loop (ZeRO 0) against a plain loop with torch.compile, fused AdamW and
   autocast, on the same batches; samples/s and model FLOPs utilisation of both.
2. The same model through ZeRO-2 and ZeRO-3, one line each (ratio against row 1's plain
   loop), with the time to gather the ZeRO-3 weights for saving.
3. LoRA on SmolLM2-135M's shapes (random init: the weights do not travel; r=16 on every
   projection), bf16: conveyor's loop against plain PyTorch + peft; tokens/s.
4. Generation on SmolLM2-135M's shapes, bf16: the batched decode engine against one
   ``generate`` per request, at concurrency 1 and 32; output tokens/s and p99 time to first token.
5. The CLINC150 MiniLM recipe at GPU settings (``--minilm``: an all-MiniLM-L6-v2 folder; the
   fp16 copy that ``bench/gpu_prepare.sh`` makes is upcast to fp32 first): test in-scope
   accuracy, out-of-scope recall and training wall time.

A row that fails prints its error in the table and the others still run. ``--quick`` runs
tiny shapes on whatever device there is (the CPU trial of this script). ``bench/gpu_run.sh``
is the device command; BENCHMARKS.md records the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conveyor.offline import apply_offline_environment
from conveyor.settings import load_settings
from testbed.flops import bert_flops_per_sample, model_flops_utilisation, peak_flops
from testbed.harness import compare
from training import engine as ds
from training.checkpoints import TrainState
from training.data import Encoded, collate, epoch_batches
from training.loop import LoopSettings, fit

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    """The shapes of one run: the issue's, or tiny ones for a CPU trial (``--quick``)."""

    bert: dict[str, Any]
    seq: int
    batch: int
    steps: int  # optimizer steps per timed run
    repeats: int
    lora_batch: int
    gen_tokens: int
    gen_concurrency: tuple[int, ...]
    gen_requests: int  # per run at the highest concurrency
    llama: dict[str, Any] | None  # None: SmolLM2-135M's own config
    clinc: list[str]  # recipe overrides for row 5


FULL = Sizes(
    bert={},  # BertConfig's defaults are BERT-base
    seq=128,
    batch=256,
    steps=20,
    repeats=5,
    lora_batch=32,
    gen_tokens=64,
    gen_concurrency=(1, 32),
    gen_requests=32,
    llama=None,
    clinc=["training.gpus=1", "training.batch_size=64"],
)
QUICK = Sizes(
    bert={
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
    },
    seq=32,
    batch=8,
    steps=2,
    repeats=1,
    lora_batch=4,
    gen_tokens=8,
    gen_concurrency=(1, 4),
    gen_requests=8,
    llama={
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    clinc=[
        "training.max_steps=10",
        "training.eval_every_steps=10",
        "training.checkpoint_every_steps=1000",
    ],
)


def device() -> torch.device:
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _bert(sizes: Sizes, labels: int) -> tuple[Any, Encoded]:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(**sizes.bert)
    config.num_labels = labels
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    rows = sizes.batch * sizes.steps * 2  # two timed runs' worth, reused epoch after epoch
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (rows, sizes.seq), generator=generator)
    classes = torch.randint(0, labels, (rows,), generator=generator)
    return model, Encoded(ids.tolist(), classes.tolist())


def _batches(data: Encoded, batch: int, epoch: int, steps: int) -> list[list[int]]:
    return epoch_batches(data.lengths, batch, 1, epoch, bucket=False)[:steps]


def plain_compiled_loop(
    model: Any, data: Encoded, sizes: Sizes, compile_model: bool = True
) -> Callable[[], float]:
    """The loop a person writes for speed: torch.compile, fused AdamW, bf16 autocast."""
    where = device()
    model.to(where)
    optimizer = ds.build_optimizer(model, 1e-4, 0.01)  # fused on a GPU
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    step_model = torch.compile(model) if compile_model else model
    epoch = [0]

    def run() -> float:
        model.train()
        batches = _batches(data, sizes.batch, epoch[0], sizes.steps)
        for indices in batches:
            batch = {
                k: v.to(where, non_blocking=True) for k, v in collate(data, indices, 0).items()
            }
            with torch.autocast(where.type, dtype=torch.bfloat16):
                loss = step_model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        _sync()
        epoch[0] += 1
        return float(sum(len(b) for b in batches))

    return run


def conveyor_engine(
    model: Any, sizes: Sizes, zero_stage: int, precision: str = "bf16", compile_model: bool = False
) -> tuple[Any, float | None]:
    """The engine fine_tune builds (the model on the device, our AdamW and schedule), and the
    norm the loop clips to (None where the engine clips: ZeRO 1 and above)."""
    model.to(device())
    optimizer = ds.build_optimizer(model, 1e-4, 0.01)
    scheduler = ds.build_scheduler(optimizer, 10**6, 0.0)
    config, clip = ds.move_clipping_to_loop(
        ds.deepspeed_config(
            micro_batch_size=sizes.batch,
            gradient_accumulation_steps=1,
            world_size=1,
            zero_stage=zero_stage,
            precision=precision,
            max_grad_norm=1.0,
        )
    )
    engine = ds.initialize(model, optimizer, scheduler, config)
    if compile_model:
        engine.compile()  # as fine_tune does with training.compile
    return engine, clip


def conveyor_fit_loop(
    engine: Any, data: Encoded, sizes: Sizes, clip: float | None, loss_every: int = 1
) -> Callable[[], float]:
    """``training.loop.fit`` for ``sizes.steps`` more steps (and its end-of-run validation
    on 8 rows, as every fit does); the loss read back every ``loss_every`` steps."""
    validation = data.take(8)
    epoch = [0]

    def run() -> float:
        start = engine.global_steps
        cfg = LoopSettings(
            total_steps=start + sizes.steps,
            batch_size=sizes.batch,
            seed=1,
            checkpoint_every=10**9,
            checkpoint_dir=None,
            bucket=False,
            show_progress=False,
            clip_grad_norm=clip,
            loss_every=loss_every,
        )
        result = fit(
            engine,
            data,
            validation,
            pad_id=0,
            cfg=cfg,
            state=TrainState(step=start, epoch=epoch[0]),
        )
        _sync()
        epoch[0] += 1
        return float(result.state.samples)

    return run


def row_bert(sizes: Sizes, peak: float | None, results: dict[str, Any]) -> list[dict[str, Any]]:
    """Conveyor's loop as shipped (eager, the loss read back every step), with
    ``training.compile``, and compiled with the loss read every 10th step
    (``LoopSettings.loss_every``: is the per-step wait on the device what it costs?)."""
    model, data = _bert(sizes, labels=151)
    flops = bert_flops_per_sample(model.config, sizes.seq)
    plain = plain_compiled_loop(copy.deepcopy(model), data, sizes)
    rows = []
    arms = (
        (False, 1, "as shipped"),
        (True, 1, "with training.compile"),
        (True, 10, "compiled, loss read every 10 steps"),
    )
    for first, (compile_model, loss_every, label) in enumerate(arms):
        engine, clip = conveyor_engine(
            copy.deepcopy(model), sizes, zero_stage=0, compile_model=compile_model
        )
        ours = conveyor_fit_loop(engine, data, sizes, clip, loss_every)
        result = compare(
            "BERT-base bf16",
            (f"conveyor, {label}", ours),
            ("plain compiled", plain),
            repeats=sizes.repeats if first == 0 else max(1, sizes.repeats - 2),
            warmup=2 if first == 0 else 1,  # the plain loop compiles in the first warm-up
            unit="samples/s",
        )
        results.setdefault("plain_bert_samples_s", result.baseline.median_throughput)
        rows.append(
            _row(
                "1",
                f"BERT-base fine-tuning, seq {sizes.seq}, batch {sizes.batch}, bf16, ZeRO 0, "
                f"conveyor {label}",
                result.arm.median_throughput,
                result.baseline.median_throughput,
                "samples/s",
                mfu=model_flops_utilisation(result.arm.median_throughput, flops, peak),
                baseline_mfu=model_flops_utilisation(
                    result.baseline.median_throughput, flops, peak
                ),
                target=">= 1.0x, >= 35% MFU",
            )
        )
        engine.destroy()
    return rows


def row_zero(sizes: Sizes, peak: float | None, results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    model, data = _bert(sizes, labels=151)
    flops = bert_flops_per_sample(model.config, sizes.seq)
    plain = results.get("plain_bert_samples_s")
    for stage in (2, 3):
        engine, clip = conveyor_engine(copy.deepcopy(model), sizes, zero_stage=stage)
        run = conveyor_fit_loop(engine, data, sizes, clip)
        run()  # warm-up
        throughputs = []
        for _ in range(max(1, sizes.repeats // 2)):
            start = time.perf_counter()
            throughputs.append(run() / (time.perf_counter() - start))
        gathered = time.perf_counter()
        if stage == 3:
            state = engine._zero3_consolidated_16bit_state_dict()
            assert state and all(t.numel() for t in state.values()), "gathered nothing"
        else:
            state = {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}
        save_s = time.perf_counter() - gathered
        ours = sorted(throughputs)[len(throughputs) // 2]
        rows.append(
            _row(
                "2",
                f"the same, ZeRO-{stage} (save gathered: {save_s:.2f} s)",
                ours,
                plain,
                "samples/s",
                mfu=model_flops_utilisation(ours, flops, peak),
                target="reported",
            )
        )
        engine.destroy()
        del engine, state
    return rows


def _smollm2_shapes(sizes: Sizes, config_dir: Path | None) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if config_dir is None:
        raise ValueError("rows 3 and 4 need SmolLM2's config and tokenizer (--smollm2 DIR)")
    tokenizer = AutoTokenizer.from_pretrained(str(config_dir))
    if sizes.llama is None:
        config = AutoConfig.from_pretrained(str(config_dir))
    else:  # tiny shapes: the tokenizer folder is enough
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
            **sizes.llama,
        )
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tokenizer


def row_lora(sizes: Sizes, config_dir: Path | None) -> list[dict[str, Any]]:
    from bench import lora_throughput as lt
    from conveyor.chat import read_chat_split
    from training.data.chat import encode_chat
    from training.lora import wrap_with_lora

    base, tokenizer = _smollm2_shapes(sizes, config_dir)
    conversations = read_chat_split(lt.DATA)[: sizes.lora_batch * sizes.steps * 2]
    data = encode_chat(tokenizer, conversations, 192).data
    pad_id = int(tokenizer.pad_token_id or tokenizer.eos_token_id)
    ours = wrap_with_lora(copy.deepcopy(base), lt.LORA).to(device())
    theirs = wrap_with_lora(copy.deepcopy(base), lt.LORA).to(device())
    theirs.load_state_dict(ours.state_dict())
    saved = lt.BATCH
    lt.BATCH = sizes.lora_batch
    try:
        result = compare(
            "LoRA SmolLM2 bf16",
            ("conveyor", lt.conveyor_loop(ours, data, pad_id, sizes.steps, "bf16")),
            ("plain + peft", lt.plain_loop(theirs, data, pad_id, sizes.steps, "bf16")),
            repeats=sizes.repeats,
            warmup=1,
            unit="tokens/s",
        )
    finally:
        lt.BATCH = saved
    return [
        _row(
            "3",
            f"LoRA r={lt.LORA.r} on SmolLM2-135M shapes, batch {sizes.lora_batch}, bf16",
            result.arm.median_throughput,
            result.baseline.median_throughput,
            "tokens/s",
            target="reported",
        )
    ]


def row_generation(sizes: Sizes, config_dir: Path | None) -> list[dict[str, Any]]:
    from bench import serving_generate as sg
    from serving.engine.decoding import DecodeEngine

    model, tokenizer = _smollm2_shapes(sizes, config_dir)
    dtype = torch.bfloat16 if device().type == "cuda" else torch.float32
    model = model.to(device(), dtype=dtype).eval()
    top = max(sizes.gen_concurrency)
    engine = DecodeEngine(model, tokenizer, max_batch=top, context=2048, name="gpu-suite")
    arms = {"engine": sg.engine_request(engine), "naive": sg.naive_request(model, tokenizer)}
    prompts = sg._prompts(tokenizer, 1000)
    for request in arms.values():  # warm-up
        asyncio.run(sg._closed_loop(request, prompts[:2], 1, 4))
    runs: dict[tuple[str, int], Any] = {}
    offset = 2
    for clients in sizes.gen_concurrency:
        count = sizes.gen_requests if clients == top else max(4, sizes.gen_requests // 8)
        batch = prompts[offset : offset + count]
        offset += count
        for name, request in arms.items():
            seconds, tokens, ttfts = asyncio.run(
                sg._closed_loop(request, list(batch), clients, sizes.gen_tokens)
            )
            run = runs.setdefault((name, clients), sg.Run())
            run.seconds.append(seconds)
            run.tokens.append(tokens)
            run.ttfts.extend(ttfts)
    engine.close()
    rows = []
    for clients in sizes.gen_concurrency:
        ours, naive = runs[("engine", clients)], runs[("naive", clients)]
        rows.append(
            _row(
                "4",
                f"generation, concurrency {clients}, {sizes.gen_tokens} tokens, "
                f"p99 TTFT {ours.ttft(0.99) * 1000:.0f} ms against "
                f"{naive.ttft(0.99) * 1000:.0f} ms",
                ours.tokens_per_second(),
                naive.tokens_per_second(),
                "output tokens/s",
                target="reported",
            )
        )
    return rows


def _fp32_copy(folder: Path, into: Path) -> Path:
    """An fp32 copy of a model folder (the carried MiniLM is fp16 to fit the transfer)."""
    import shutil

    from transformers import AutoModel

    shutil.copytree(folder, into, ignore=shutil.ignore_patterns("*.safetensors"))
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32)
    model.config.dtype = "float32"
    model.save_pretrained(str(into))
    return into


def row_clinc(sizes: Sizes, minilm: Path | None) -> list[dict[str, Any]]:
    from bench.train_quality import score_recipe

    overrides = list(sizes.clinc)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-minilm-") as scratch:
        if minilm is not None:
            overrides.append(f"model.base={_fp32_copy(minilm, Path(scratch) / 'minilm')}")
        report = score_recipe(str(ROOT / "recipes" / "clinc150-minilm.yaml"), overrides)
    return [
        {
            "row": "5",
            "what": f"CLINC150 MiniLM recipe ({' '.join(overrides[:2])})",
            "result": f"in-scope {report['in_scope_accuracy']:.3f}, oos recall "
            f"{report['oos_recall']:.3f}, training {report['train_wall_s']} s, "
            f"{report['steps']} steps",
            "target": "reference: 0.954 in-scope in 33 s (plain loop, H100)",
        }
    ]


def _row(
    number: str,
    what: str,
    ours: float,
    baseline: float | None,
    unit: str,
    *,
    mfu: float | None = None,
    baseline_mfu: float | None = None,
    target: str,
) -> dict[str, Any]:
    result = f"{ours:,.1f} {unit}"
    if baseline:
        result += f" against {baseline:,.1f} ({ours / baseline:.2f}x)"
    if mfu is not None:
        result += f", MFU {mfu:.1%}"
        if baseline_mfu is not None:
            result += f" against {baseline_mfu:.1%}"
    return {
        "row": number,
        "what": what,
        "result": result,
        "target": target,
        "ours": ours,
        "baseline": baseline,
        "mfu": mfu,
        "baseline_mfu": baseline_mfu,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| row | what | result | target |", "|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['what']} | {r['result']} | {r['target']} |" for r in rows]
    return "\n".join(lines)


def _device_line() -> str:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def run_rows(
    numbers: list[str],
    sizes: Sizes,
    peak: float | None,
    config_dir: Path | None,
    minilm: Path | None,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """The table's rows, in order; a row that raised holds its error instead of figures.
    ``on_row`` sees the rows so far after each (a run cut short keeps what it measured)."""
    results: dict[str, Any] = {}  # row 1's plain loop, the baseline of row 2
    steps: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "1": lambda: row_bert(sizes, peak, results),
        "2": lambda: row_zero(sizes, peak, results),
        "3": lambda: row_lora(sizes, config_dir),
        "4": lambda: row_generation(sizes, config_dir),
        "5": lambda: row_clinc(sizes, minilm),
    }
    rows: list[dict[str, Any]] = []
    for number in numbers:
        started = time.perf_counter()
        print(f"[gpu-suite] row {number} ...", file=sys.stderr, flush=True)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed prints
                rows += steps[number]()
        except Exception as exc:  # one broken row must not hide the others' figures
            traceback.print_exc()
            rows.append(
                {
                    "row": number,
                    "what": "(failed)",
                    "target": "",
                    "result": f"{type(exc).__name__}: {(str(exc) or '-').splitlines()[0][:200]}",
                }
            )
        print(
            f"[gpu-suite] row {number}: {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if on_row is not None:
            on_row(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["1", "2", "3", "4", "5"])
    parser.add_argument("--quick", action="store_true", help="tiny shapes: the CPU trial")
    parser.add_argument("--minilm", type=Path, help="all-MiniLM-L6-v2 folder (row 5)")
    parser.add_argument("--smollm2", type=Path, help="SmolLM2's config and tokenizer folder")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak")
    parser.add_argument("--out", type=Path, help="folder for gpu_suite.json")
    args = parser.parse_args()
    apply_offline_environment(load_settings())
    ds.ensure_distributed_env()
    sizes = QUICK if args.quick else FULL
    peak = peak_flops(args.peak_tflops)
    needs_smollm2 = {"3", "4"} & set(args.rows)
    config_dir = args.smollm2 or (_converted_smollm2() if needs_smollm2 else None)

    def keep(rows: list[dict[str, Any]]) -> None:
        print(_table(rows), file=sys.stderr, flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            report = {"device": _device_line(), "quick": args.quick, "rows": rows}
            (args.out / "gpu_suite.json").write_text(json.dumps(report, indent=2))

    rows = run_rows(args.rows, sizes, peak, config_dir, args.minilm, on_row=keep)
    print(f"device: {_device_line()}; peak {peak / 1e12 if peak else '?'} TFLOP/s bf16")
    print(_table(rows))


def _converted_smollm2() -> Path:
    from conveyor.pretrained import SMOLLM2, resolve_pretrained

    converted = resolve_pretrained(SMOLLM2, load_settings().cache_dir)
    assert converted is not None
    return converted.path


if __name__ == "__main__":
    main()
