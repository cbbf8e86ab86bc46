"""Metrics used during training and by ``evaluate``: accuracy, macro-F1, perplexity."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from training.data import Encoded, collate

__all__ = ["accuracy", "evaluate", "macro_f1", "predict"]


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if not labels:
        return 0.0
    return sum(p == g for p, g in zip(predictions, labels, strict=True)) / len(labels)


def macro_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean F1 over the classes seen in either the gold labels or the predictions."""
    true_pos: Counter[int] = Counter()
    predicted: Counter[int] = Counter(predictions)
    gold: Counter[int] = Counter(labels)
    for p, g in zip(predictions, labels, strict=True):
        if p == g:
            true_pos[g] += 1
    classes = set(gold) | set(predicted)
    if not classes:
        return 0.0
    scores = [2 * true_pos[c] / (predicted[c] + gold[c]) for c in classes]
    return sum(scores) / len(scores)


def _length_sorted_batches(data: Encoded, batch_size: int) -> list[list[int]]:
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def predict(
    model: Any, data: Encoded, *, batch_size: int, pad_id: int, device: torch.device | str = "cpu"
) -> tuple[list[int], float, int]:
    """Class predictions (in data order), summed loss and loss count, in eval mode."""
    was_training = model.training
    model.eval()
    predictions = [0] * len(data)
    total_loss, count = 0.0, 0
    try:
        for indices in _length_sorted_batches(data, batch_size):
            batch = {k: v.to(device) for k, v in collate(data, indices, pad_id).items()}
            out = model(**batch)
            if data.labels:
                tokens = len(indices)
                for i, p in zip(indices, out.logits.argmax(-1).tolist(), strict=True):
                    predictions[i] = p
            else:
                tokens = int((batch["labels"][:, 1:] != -100).sum())
            total_loss += float(out.loss) * tokens
            count += tokens
    finally:
        model.train(was_training)
    return predictions, total_loss, count


def evaluate(
    model: Any, data: Encoded, *, batch_size: int, pad_id: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """``loss`` plus ``accuracy``/``macro_f1`` (classification) or ``perplexity`` (causal LM)."""
    predictions, total_loss, count = predict(
        model, data, batch_size=batch_size, pad_id=pad_id, device=device
    )
    loss = total_loss / max(1, count)
    if data.labels:
        return {
            "loss": loss,
            "accuracy": accuracy(predictions, data.labels),
            "macro_f1": macro_f1(predictions, data.labels),
        }
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
