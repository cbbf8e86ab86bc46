"""What each GGUF quant costs in quality, against the fp32 version it came from, judged by the
parity gate, with speed and memory beside it.

    .venv/bin/python -m bench.gguf_quality [--prompts 400] [--version FOLDER]

The fp32 version is SmolLM2-135M-Instruct as shipped (zero-shot), or ``--version`` (a model
folder, e.g. a fine-tuned E2E version). It answers a fixed, seeded sample of E2E test prompts
(64 new tokens, greedy) on torch; each GGUF quant (f16, q8_0, q4_0) answers the same prompts
through llama.cpp. Reported per model: BLEU, ROUGE-L, the share of answers omitting / adding a
fact (the E2E checker), the seconds to answer all prompts, the file size and the process RSS
growth while it was loaded; and each quant's parity verdict (the chat gates against the fp32
answers with the ``convert`` defaults: headline drop <= 0.01, each fact-error rate +0.02).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor.recipe.schema import ConvertSection, GatesSection

E2E_TEST = Path(__file__).resolve().parents[1] / "data" / "e2e_nlg" / "test.jsonl"
QUANTS = ("f16", "q8_0", "q4_0")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gates(prompts: int) -> GatesSection:
    parity = ConvertSection()
    return GatesSection.model_validate(
        {
            "bootstrap_samples": 1000,
            "generation": {
                "max_prompts": prompts, "max_new_tokens": 64, "batch_size": 16,
                "task_check": "e2e-facts", "headline_metric": "rouge_l",
                "max_headline_drop": parity.max_headline_drop,
                "max_fact_error_rise": parity.max_fact_error_rise,
            },
        }
    )  # fmt: skip


def _row(run: Any, seconds: float, size_mb: float, rss_mb: float) -> dict[str, Any]:
    from gates.chat.evaluate import evaluation_of

    metrics = evaluation_of(run).metrics
    keys = ("bleu", "rouge_l", "omission_rate", "hallucination_rate")
    return {
        **{k: round(float(metrics[k]), 4) for k in keys if k in metrics},
        "answer_s": round(seconds, 1),
        "file_mb": round(size_mb, 1),
        "rss_growth_mb": round(rss_mb, 1),
    }


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conversion import write_gguf
    from conveyor.llamacpp import SLOT_CONTEXT, LlamaCppModel
    from conveyor.pretrained import SMOLLM2, resolve_pretrained, smollm2_gguf
    from conveyor.settings import load_settings
    from gates.chat.evaluate import judge_generation, run_generation
    from gates.chat.test_set import read_prompt_groups

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--version", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = args.version
    if folder is None:
        base = resolve_pretrained(SMOLLM2, load_settings().cache_dir)
        assert base is not None
        folder = base.path
    gates = _gates(args.prompts)
    groups = read_prompt_groups(E2E_TEST, args.prompts, 0)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    before = _rss_mb()
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    loaded_mb = _rss_mb() - before
    started = time.perf_counter()
    asked = {"generation": gates.generation, "max_length": 192, "reference_loss": False}
    parent = run_generation("fp32", model, tokenizer, groups, **asked)  # type: ignore[arg-type]
    size = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors")) / 1e6
    rows = {"fp32 (torch)": _row(parent, time.perf_counter() - started, size, loaded_mb)}
    verdicts: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix="gguf-quality-"))
    for quant in QUANTS:
        path = work / f"{quant}.gguf"
        source = smollm2_gguf() if args.version is None else None
        write_gguf(model, tokenizer, path, quant=quant, tokenizer_folder=folder, source_gguf=source)
        before = _rss_mb()
        llama = LlamaCppModel(path, context=SLOT_CONTEXT, slots=8, threads=torch.get_num_threads())
        grown = _rss_mb() - before
        started = time.perf_counter()
        run = run_generation(f"gguf {quant}", llama, tokenizer, groups, **asked)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        llama.close()
        rows[f"gguf {quant} (llama.cpp)"] = _row(run, seconds, path.stat().st_size / 1e6, grown)
        judged = judge_generation(run, parent, groups, gates)
        verdicts[quant] = judged.verdict.reason  # "pass: ..." or "fail: ..."
        print(quant, rows[f"gguf {quant} (llama.cpp)"], verdicts[quant], flush=True)
    report = {"prompts": len(groups), "threads": torch.get_num_threads(), "rows": rows,
              "parity": verdicts}  # fmt: skip
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
