"""What a new version costs a worker: an adapter on the shared base against a whole model.

    .venv/bin/python -m bench.adapter_swap [--model smollm2|tiny] [--repeats 3]

Full-model swap: load the version's folder (``from_pretrained``), then its first greedy
token. Adapter swap: ``load_adapter`` onto the base already held (through the pool, between
two decode steps), then its first token; and ``delete_adapter``. Memory per extra version:
the parameter bytes it adds to the process (a whole model, or the adapter's LoRA weights),
and the change in resident memory. The adapter is LoRA r=16 on every projection, as
recipes/e2e-smollm2.yaml trains it. Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.settings import load_settings
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _base_folder(name: str, work: Path) -> Path:
    converted = resolve_pretrained(SMOLLM2, load_settings().cache_dir)
    assert converted is not None
    if name == "smollm2":
        return converted.path
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    folder = work / "tiny-base"
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _adapter(base: Path, folder: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), config)
    model.save_pretrained(str(folder))
    return folder


def _bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _first_token(engine: DecodeEngine, adapter: str | None) -> None:
    asyncio.run(engine.complete([1, 2, 3, 4], SamplingParams(max_tokens=1), adapter))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    apply_offline_environment(load_settings())
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="adapter-swap-"))
    base_folder = _base_folder(args.model, work)
    tokenizer = AutoTokenizer.from_pretrained(str(base_folder))
    folders = [_adapter(base_folder, work / f"lora-{i}", i) for i in range(args.repeats + 1)]

    full_s, full_only, full_rss, full_bytes = [], [], [], 0
    for _ in range(args.repeats):
        rss, start = _rss(), time.perf_counter()
        model: Any = AutoModelForCausalLM.from_pretrained(str(base_folder))
        model.eval()
        full_only.append(time.perf_counter() - start)
        engine = DecodeEngine(model, tokenizer, context=2048)
        _first_token(engine, None)
        full_s.append(time.perf_counter() - start)
        full_rss.append(_rss() - rss)
        full_bytes = _bytes(model)
        engine.close()
        del engine, model

    base: Any = AutoModelForCausalLM.from_pretrained(str(base_folder))
    shared: Any = PeftModel.from_pretrained(base.eval(), str(folders[0]), adapter_name="v0")
    shared.eval()
    engine = DecodeEngine(shared, tokenizer, context=2048)
    _first_token(engine, "v0")
    load_s, only_s, delete_s, added, rss_added = [], [], [], [], []
    for i, folder in enumerate(folders[1:], start=1):
        name = f"v{i}"
        rss, before, start = _rss(), _bytes(shared), time.perf_counter()
        load = lambda: shared.load_adapter(str(folder), adapter_name=name)  # noqa: B023, E731
        engine.call_between_steps(load).result()
        only_s.append(time.perf_counter() - start)
        _first_token(engine, name)
        load_s.append(time.perf_counter() - start)
        added.append(_bytes(shared) - before)
        rss_added.append(_rss() - rss)
        start = time.perf_counter()
        engine.call_between_steps(lambda: shared.delete_adapter(name)).result()  # noqa: B023
        delete_s.append(time.perf_counter() - start)
    engine.close()

    size = (folders[1] / "adapter_model.safetensors").stat().st_size
    med = statistics.median
    print(f"\nmodel {args.model}, LoRA r=16 on {len(TARGETS)} projections, {args.repeats} repeats")
    print(
        "| a new version as | load (ms) | load + first token (ms) | param MB added | RSS MB added |"
    )
    print("|---|---|---|---|---|")
    print(f"| a full model | {med(full_only) * 1000:.0f} | {med(full_s) * 1000:.0f} | "
          f"{full_bytes / 2**20:.1f} | {med(full_rss) / 2**20:.1f} |")  # fmt: skip
    print(f"| an adapter on the shared base | {med(only_s) * 1000:.0f} | "
          f"{med(load_s) * 1000:.0f} | "
          f"{med(added) / 2**20:.2f} | {med(rss_added) / 2**20:.1f} |")  # fmt: skip
    print(f"adapter file {size / 2**20:.2f} MB; delete_adapter {med(delete_s) * 1000:.1f} ms; "
          f"load {med(full_only) / med(only_s):.1f}x faster, "
          f"{full_bytes / max(med(added), 1):.0f}x less parameter memory")  # fmt: skip


if __name__ == "__main__":
    main()
