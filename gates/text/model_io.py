"""Run a loaded model folder over texts for the gates: predictions, perplexities, latency.

Loading is the core format's (:mod:`conveyor.model_folder`): any failure to load is an
:class:`ArtifactError` with a one-line reason, so a broken candidate is judged "artifact
unloadable", not crashed on. Re-exported here for the gates' own modules.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from conveyor.model_folder import ONNX_INT8_FILE, ArtifactError, LoadedModel, load_model
from conveyor.progress import Ticker

__all__ = [
    "ArtifactError",
    "LoadedModel",
    "Predictions",
    "generate_samples",
    "latency_profile",
    "load_model",
    "model_size_mb",
    "predict_classes",
    "token_losses",
]

EVAL_BATCH = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """Per text: predicted label name and the model's confidence in it."""

    labels: list[str]
    confidence: npt.NDArray[np.float64]


def _batches(texts: Sequence[str], size: int) -> list[list[int]]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


def _encode(loaded: LoadedModel, texts: list[str], max_length: int) -> Any:
    """A padded, truncated batch of tensors."""
    return loaded.tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )


@torch.inference_mode()
def predict_classes(
    loaded: LoadedModel, texts: Sequence[str], max_length: int, *, what: str = "classified"
) -> Predictions:
    """Label and confidence for each text (length-sorted batches, dynamic padding); the
    progress (``what``: n/total, elapsed, ETA) is logged every 10 s."""
    assert loaded.label_names is not None
    labels = [""] * len(texts)
    confidence = np.zeros(len(texts), dtype=np.float64)
    ticker = Ticker(log, what, len(texts))
    for indices in _batches(texts, EVAL_BATCH):
        batch = _encode(loaded, [texts[i] for i in indices], max_length)
        probs = torch.softmax(loaded.model(**batch).logits.float(), dim=-1)
        best, ids = probs.max(dim=-1)
        for slot, row in enumerate(indices):
            labels[row] = loaded.label_names[int(ids[slot])]
            confidence[row] = float(best[slot])
        ticker.advance(len(indices))
    return Predictions(labels, confidence)


@torch.inference_mode()
def token_losses(
    loaded: LoadedModel, texts: Sequence[str], max_length: int, *, what: str = "scored"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per text: summed next-token negative log-likelihood and the number of predicted tokens."""
    nll = np.zeros(len(texts), dtype=np.float64)
    counts = np.zeros(len(texts), dtype=np.int64)
    ticker = Ticker(log, what, len(texts))
    for indices in _batches(texts, 16):
        batch = _encode(loaded, [texts[i] for i in indices], max_length)
        logits = loaded.model(**batch).logits.float()[:, :-1]
        targets = batch["input_ids"][:, 1:]
        mask = batch["attention_mask"][:, 1:].bool()
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, reduction="none"
        )
        losses = losses.masked_fill(~mask, 0.0)
        for slot, row in enumerate(indices):
            nll[row] = float(losses[slot].sum())
            counts[row] = int(mask[slot].sum())
        ticker.advance(len(indices))
    return nll, counts


@torch.inference_mode()
def generate_samples(
    loaded: LoadedModel, prompts: Sequence[str], max_new_tokens: int = 40
) -> list[str]:
    """Greedy continuations of fixed prompts: the same text every run for the same model."""
    config = loaded.model.config
    positions: Any = getattr(config, "n_positions", None)
    context = int(positions or getattr(config, "max_position_embeddings", 512))
    samples = []
    for prompt in prompts:
        encoded = loaded.tokenizer(
            prompt, return_tensors="pt", truncation=True, max_length=max(1, context // 2)
        )
        room = context - encoded["input_ids"].shape[1]
        output = loaded.model.generate(
            **encoded,
            max_new_tokens=min(max_new_tokens, room),
            do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
        new_tokens = output[0, encoded["input_ids"].shape[1] :]
        samples.append(loaded.tokenizer.decode(new_tokens, skip_special_tokens=True))
    return samples


@torch.inference_mode()
def _forward_ms(loaded: LoadedModel, texts: Sequence[str], max_length: int) -> float:
    batch = _encode(loaded, list(texts), max_length)
    start = time.perf_counter()
    loaded.model(**batch)
    return (time.perf_counter() - start) * 1000


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def latency_profile(
    loaded: LoadedModel,
    texts: Sequence[str],
    max_length: int,
    *,
    singles: int = 40,
    batches: int = 8,
) -> dict[str, float]:
    """p50/p99 forward latency (ms) at batch 1 and 32 on this machine, after a warm-up."""
    pool = list(texts) or ["hello"]
    _forward_ms(loaded, pool[:1], max_length)
    one = [_forward_ms(loaded, [pool[i % len(pool)]], max_length) for i in range(singles)]
    many = [
        _forward_ms(loaded, [pool[(i * 32 + j) % len(pool)] for j in range(32)], max_length)
        for i in range(batches)
    ]
    return {
        "p50_ms_batch1": statistics.median(one),
        "p99_ms_batch1": _percentile(one, 99),
        "p50_ms_batch32": statistics.median(many),
        "p99_ms_batch32": _percentile(many, 99),
    }


def model_size_mb(folder: Path) -> float:
    """Weights on disk: the safetensors, or the graph of an int8 version."""
    weights = [*folder.glob("*.safetensors"), *folder.glob(ONNX_INT8_FILE)]
    return sum(p.stat().st_size for p in weights) / 1e6
