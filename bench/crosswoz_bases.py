"""CrossWOZ NLG: SmolLM2-135M-Instruct against Qwen2.5-Coder-0.5B-Instruct (a pinned GGUF) as the
base of ``recipes/crosswoz-smollm2.yaml``, on the same prompts and the same small CPU budget.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.crosswoz_bases --base smollm2 \
        [--prompts 24] [--steps 3] [--finetune-steps 0] [--out FILE]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.crosswoz_bases \
        --base '<file>.gguf@sha256:<hex>' ...   # e.g. recipes/crosswoz-qwen-coder.yaml's pin

One base per process (its peak RSS is then its own). The base is resolved as a recipe would
(the GGUF hashed against its pin, converted to fp32 once, cached). Measured:

* zero-shot: the base GGUF as shipped (SmolLM2 Q4_1, Qwen Q4_K_M) answers a fixed, seeded sample
  of CrossWOZ test prompts through llama.cpp (the recipe's generation gates: 96 new tokens,
  greedy); BLEU (zh tokenizer), chrF, ROUGE-L over characters, the dialogue-act checker's
  omission and addition rates, the share of answers that echo an act instead of replying,
  and the answer tokens per second (8 slots decoding together);
* training: ``--steps`` LoRA steps of the recipe (r=16 on every projection, batch 8, lr 2e-3,
  max_length 320) on the fp32 conversion, plain peft loop; seconds and tokens per step;
* ``--finetune-steps N`` (optional): N more steps, then the same prompts answered by the merged
  fp32 model on torch (so its tokens/s is torch's, not llama.cpp's); ``--judge`` answers them
  after the timed steps alone;
* memory: RSS after loading each model and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from pathlib import Path
from typing import Any

import torch

from conveyor.chat import read_chat_split
from conveyor.offline import apply_offline_environment
from conveyor.pretrained import SMOLLM2, resolve_pretrained, smollm2_gguf
from conveyor.recipe import load_recipe
from conveyor.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "crosswoz-smollm2.yaml"
# An answer that writes a dialogue act back (``告知(景点.名称=X)``) instead of a reply: the
# metrics score it well (it holds every value), so its share is reported beside them.
_ACT = re.compile(r"[\u4e00-\u9fff]{2}\([^)]*=|[\u4e00-\u9fff]{2}\.[\u4e00-\u9fff]+=")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quality(run: Any) -> dict[str, Any]:
    from gates.chat.evaluate import evaluation_of

    metrics = evaluation_of(run).metrics
    keys = ("bleu", "chrf", "rouge_l", "omission_rate", "hallucination_rate")
    found: dict[str, Any] = {k: round(float(metrics[k]), 4) for k in keys if k in metrics}
    found["answer_tokens_per_s"] = round(float(run.footprint.get("answer_tokens_per_s", 0.0)), 2)
    found["generate_s"] = run.seconds.get("generate_s")
    found["echo_rate"] = round(sum(bool(_ACT.search(a)) for a in run.answers) / len(run.answers), 4)
    found["answers"] = list(run.answers)
    return found


def _gguf_file(base: str) -> Path:
    from conveyor.gguf_base import locate_gguf, parse_gguf_base

    spec = parse_gguf_base(base)
    return smollm2_gguf() if spec is None else locate_gguf(spec)


def _zero_shot(base: str, folder: Path, groups: Any, gates: Any, threads: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from conveyor.llamacpp import SLOT_CONTEXT, LlamaCppModel
    from gates.chat.evaluate import run_generation

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    before = _rss_mb()
    llama = LlamaCppModel(_gguf_file(base), context=SLOT_CONTEXT, slots=8, threads=threads)
    grown = _rss_mb() - before
    asked = {"generation": gates, "max_length": 320, "reference_loss": False}
    run = run_generation("zero-shot", llama, tokenizer, groups, **asked)
    llama.close()
    return {**_quality(run), "engine": "llama.cpp", "rss_growth_mb": round(grown)}


def _train(model: Any, data: Any, pad_id: int, steps: int, skip: int) -> list[dict[str, float]]:
    from training import engine as ds
    from training.data import collate, epoch_batches
    from training.lora import trainable

    optimizer = ds.build_optimizer(model, 2.0e-3, 0.0)
    params = trainable(model)
    batches = epoch_batches(data.lengths, 8, 42, 0, bucket=False)[skip : skip + steps]
    timings = []
    model.train()
    for indices in batches:
        started = time.perf_counter()
        loss = model(**collate(data, indices, pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = sum(len(data.input_ids[i]) for i in indices)
        seconds = time.perf_counter() - started
        timings.append({"s": round(seconds, 2), "tokens": tokens, "loss": round(loss.item(), 3)})
        print("step", timings[-1], flush=True)
    return timings


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gates.chat.evaluate import run_generation
    from gates.chat.test_set import read_prompt_groups
    from training.data.chat import encode_chat
    from training.lora import LoraSettings, wrap_with_lora

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=SMOLLM2)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--steps", type=int, default=3, help="timed LoRA steps")
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--judge", action="store_true", help="judge even after --steps alone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load_settings()
    apply_offline_environment(settings)
    recipe = load_recipe(RECIPE)
    gates = recipe.gates.generation
    assert gates is not None and recipe.training.lora is not None
    started = time.perf_counter()
    converted = resolve_pretrained(args.base, settings.cache_dir)
    assert converted is not None
    report: dict[str, Any] = {
        "base": args.base,
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "resolve_s": round(time.perf_counter() - started, 1),
        "load_average_start": os.getloadavg(),
    }
    assert recipe.data.test is not None
    groups = read_prompt_groups(recipe.data.test, args.prompts, gates.seed)
    report["prompts"] = len(groups)
    report["zero_shot"] = _zero_shot(args.base, converted.path, groups, gates, args.threads)
    print("zero-shot", report["zero_shot"], flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    before = _rss_mb()
    model: Any = AutoModelForCausalLM.from_pretrained(str(converted.path), dtype=torch.float32)
    report["fp32_load_rss_growth_mb"] = round(_rss_mb() - before)
    report["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    lora = recipe.training.lora
    settings_lora = LoraSettings(r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                                 target_modules=tuple(lora.target_modules))  # fmt: skip
    model = wrap_with_lora(model, settings_lora)
    conversations = read_chat_split(Path(recipe.data.train))[:512]
    encoded = encode_chat(tokenizer, conversations, recipe.model.max_length).data
    pad_id = int(tokenizer.pad_token_id)
    timed = _train(model, encoded, pad_id, args.steps, 0)
    per_step = [t["s"] for t in timed[1:]] or [t["s"] for t in timed]  # the first warms up
    report["train"] = {
        "steps": timed,
        "s_per_step": round(sum(per_step) / len(per_step), 2),
        "tokens_per_s": round(sum(t["tokens"] for t in timed) / sum(t["s"] for t in timed), 1),
        "mean_tokens_per_example": round(sum(encoded.lengths) / len(encoded.lengths), 1),
    }
    if args.finetune_steps or args.judge:
        more = _train(model, encoded, pad_id, args.finetune_steps, args.steps)
        report["finetune_steps"] = args.steps + len(more)
        merged = model.merge_and_unload()
        merged.eval()
        run = run_generation("fine-tune", merged, tokenizer, groups, generation=gates,
                             max_length=320, reference_loss=False)  # fmt: skip
        report["fine_tune"] = {**_quality(run), "engine": "torch fp32"}
    report["peak_rss_mb"] = round(_peak_mb())
    report["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
