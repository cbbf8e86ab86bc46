"""Encoded examples of any format, a seeded length-bucketed batch order, dynamic padding.

The batch order of an epoch is a pure function of (lengths, batch size, seed, epoch),
so a resumed run replays exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


__all__ = ["Encoded", "collate", "epoch_batches"]

BUCKET_BATCHES = 50  # batches per length bucket: sorted within, shuffled across


@dataclass(frozen=True)
class Encoded:
    """Token ids per example; ``labels`` holds class ids (empty for causal LM).

    ``token_labels`` (chat data) holds a label per token, -100 where no loss is wanted;
    without it a causal LM learns every token.
    """

    input_ids: list[list[int]]
    labels: list[int]
    token_labels: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def take(self, count: int) -> Encoded:
        tokens = self.token_labels[:count] if self.token_labels is not None else None
        return Encoded(self.input_ids[:count], self.labels[:count], tokens)


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket: bool = True
) -> list[list[int]]:
    """Indices of each batch of one epoch: shuffled, and length-bucketed when ``bucket``.

    Bucketing sorts each window of ``BUCKET_BATCHES`` batches by length, so a batch holds
    texts of similar length and dynamic padding adds few pad tokens; the batch order is
    then shuffled again so lengths do not trend through the epoch.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if bucket:
        window = batch_size * BUCKET_BATCHES
        order = [
            index
            for start in range(0, len(order), window)
            for index in sorted(order[start : start + window], key=lambda i: lengths[i])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket:
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
    return batches


def collate(data: Encoded, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch padded to its own longest row (dynamic padding)."""
    rows = [data.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[r, : len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention}
    if data.labels:
        batch["labels"] = torch.tensor([data.labels[i] for i in indices], dtype=torch.long)
    elif data.token_labels is not None:
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, i in enumerate(indices):
            labels[r, : len(data.token_labels[i])] = torch.tensor(data.token_labels[i])
        batch["labels"] = labels
    else:
        batch["labels"] = input_ids.masked_fill(attention == 0, -100)
    return batch
