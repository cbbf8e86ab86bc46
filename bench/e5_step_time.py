"""Training step time of a multilingual-e5-small classifier, word embedding frozen or not.

    OMP_WAIT_POLICY=PASSIVE nice -n 5 .venv/bin/python -m bench.e5_step_time [--threads 1]

One AdamW step (forward, backward, update) on 16 SIB-200 zh sentences padded to 64 tokens,
7 labels; the median of 5 steps after 2 warm-up steps, for each setting, as JSON, with the
trainable parameter count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from conveyor.e5_base import E5
from conveyor.mean_pool import freeze_configured, register_mean_pool
from conveyor.pretrained import resolve_pretrained
from conveyor.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sib200_zho_Hans" / "train.jsonl"


def step_time(folder: Path, frozen: bool, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=7, freeze_word_embeddings=frozen
    ).train()
    freeze_configured(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    labels = torch.arange(len(batch["input_ids"])) % 7
    times = []
    for _ in range(7):
        started = time.perf_counter()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return {
        "step_s": round(statistics.median(times[2:]), 3),
        "trainable_params": sum(p.numel() for p in params),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_mean_pool()
    converted = resolve_pretrained(E5, Settings().cache_dir)
    assert converted is not None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted.path)
    texts = [json.loads(line)["text"] for line in DATA.read_text().splitlines()[:16]]
    batch = dict(
        tokenizer(texts, padding="max_length", truncation=True, max_length=64, return_tensors="pt")
    )
    report = {"threads": args.threads, "batch": "16 x 64 tokens"}
    for frozen in (False, True):
        report["frozen" if frozen else "all_trainable"] = step_time(converted.path, frozen, batch)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
