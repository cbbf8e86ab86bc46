"""A distilled SmolLM2 student against its teacher on CPU: quality, decode speed, memory.

    .venv/bin/python -m bench.distil_smollm2 --home DIR --teacher e2e-smollm2:v1 \\
        --student e2e-smollm2:v2 --parity DIR/parity.json [--prompts 6] [--tokens 32]

``--home`` is a CONVEYOR_HOME holding the teacher (``conveyor train recipes/e2e-smollm2.yaml``)
and its student (``conveyor distil TEACHER --student layers=15 --against none --out DIR``,
whose parity report, the JSON beside the Markdown, holds both models' gate metrics on the
same test prompts). This script adds, for the two models alternately in one run:

- decode tokens/s: greedy, batch 1, exactly ``--tokens`` new tokens a prompt, each prompt a
  different E2E test input; the teacher's LoRA adapter merged into its base first (as the
  GGUF export and the distiller use it);
- parameters, and resident memory: a fresh process per model, RSS after loading it and
  generating a few tokens, minus RSS after the same imports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conveyor.model_folder import load_model, read_manifest
from conveyor.model_folder.manifest import ModelKind
from conveyor.offline import apply_offline_environment
from conveyor.registry import open_registry
from conveyor.settings import Settings
from testbed.paths import REPO_ROOT

_RSS_PROBE = """
import sys, torch, transformers, peft
from transformers import AutoModelForCausalLM, AutoTokenizer
from bench.distil_smollm2 import _loaded, _prompts
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6
before = rss()
model, tokenizer = _loaded(sys.argv[1], sys.argv[2])
ids = _prompts(tokenizer, 1)[0]
model.generate(ids, max_new_tokens=8, do_sample=False)
print(rss() - before)
"""
_GATE_METRICS = ("rouge_l", "bleu", "chrf", "omission_rate", "hallucination_rate", "perplexity")


def _loaded(folder: str, task: str) -> tuple[Any, Any]:
    import torch

    torch.set_grad_enabled(False)
    loaded = load_model(folder, task)
    model = loaded.model
    if read_manifest(folder).kind is ModelKind.LORA_ADAPTER:
        model = model.merge_and_unload()
    return model.eval(), loaded.tokenizer


def _prompts(tokenizer: Any, count: int, skip: int = 0) -> list[Any]:
    """Different E2E test inputs (every 37th row: the test split repeats each input)."""
    lines = (REPO_ROOT / "data" / "e2e_nlg" / "test.jsonl").read_text().splitlines()
    found = []
    for line in lines[skip * 37 :: 37][:count]:
        user = [m for m in json.loads(line)["messages"] if m["role"] == "user"]
        encoded = tokenizer.apply_chat_template(
            user, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        found.append(encoded["input_ids"])
    return found


def _tokens_per_second(model: Any, prompts: list[Any], tokens: int) -> float:
    started = time.perf_counter()
    for ids in prompts:
        model.generate(
            ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, top_p=None
        )
    return tokens * len(prompts) / (time.perf_counter() - started)


def _rss_mb(folder: str, task: str) -> float:
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, folder, task],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    return float(probe.stdout.strip().splitlines()[-1])


def _quality(parity: Path) -> dict[str, Any]:
    judged = json.loads(parity.read_text())
    ours, theirs = judged["candidate_metrics"], judged["champion_metrics"]
    return {m: {"student": ours.get(m), "teacher": theirs.get(m)} for m in _GATE_METRICS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--parity", type=Path, help="the student's parity report (.json)")
    parser.add_argument("--prompts", type=int, default=6, help="prompts a round and model")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings(home=args.home)
    apply_offline_environment(settings)
    registry = open_registry(settings)
    refs = {"teacher": args.teacher, "student": args.student}
    arms = {name: registry.resolve(ref) for name, ref in refs.items()}
    found: dict[str, Any] = {"student_record": arms["student"].metrics}
    if args.parity:
        found["quality"] = _quality(args.parity)
    models = {}
    for name, record in arms.items():
        model, tokenizer = _loaded(record.artifact_uri or "", record.task)
        models[name] = model
        found.setdefault("params", {})[name] = sum(p.numel() for p in model.parameters())
    speeds: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.rounds):
        prompts = _prompts(tokenizer, args.prompts, skip=round_ * args.prompts)
        for name, model in models.items():
            speeds[name].append(_tokens_per_second(model, prompts, args.tokens))
            print(f"round {round_ + 1}: {name} {speeds[name][-1]:.1f} tokens/s", flush=True)
    found["tokens_per_s"] = {n: (statistics.median(s), s) for n, s in speeds.items()}
    del models
    found["rss_mb"] = {n: _rss_mb(r.artifact_uri or "", r.task) for n, r in arms.items()}
    print(json.dumps(found, indent=1, default=str))


if __name__ == "__main__":
    main()
