"""Chat splits to token ids and per-token labels (assistant turns only), and their batches.

Each conversation is rendered with the tokenizer's chat template
(:func:`conveyor.chat.render_for_training`) and cut at ``max_length``; a conversation whose
answer lies wholly past the cut has nothing to learn and is dropped (and counted).
Batches are padded to their longest row; padding is never a label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conveyor.chat import IGNORE_INDEX, Conversation, read_chat_split, render_for_training

__all__ = ["ChatEncoded", "collate_chat", "encode_chat", "read_chat"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatEncoded:
    """Token ids and labels per kept conversation; how many were cut or dropped."""

    input_ids: list[list[int]]
    token_labels: list[list[int]]
    truncated: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    @property
    def trained_tokens(self) -> int:
        return sum(sum(1 for t in row if t != IGNORE_INDEX) for row in self.token_labels)


def read_chat(path: Path) -> list[Conversation]:
    """A chat split for training: the first bad row stops it, naming file:line and field."""
    return read_chat_split(path, strict=True)


def encode_chat(
    tokenizer: Any, conversations: Sequence[Conversation], max_length: int, split: str = "train"
) -> ChatEncoded:
    """Render, tokenize and label every conversation."""
    ids: list[list[int]] = []
    labels: list[list[int]] = []
    truncated = dropped = 0
    for conversation in conversations:
        rendered = render_for_training(tokenizer, conversation, max_length)
        truncated += rendered.truncated
        if rendered.trained_tokens == 0:
            dropped += 1
            continue
        ids.append(rendered.input_ids)
        labels.append(rendered.labels)
    if dropped:
        log.warning(
            "data.%s: %d of %d conversations dropped: no assistant token within "
            "model.max_length=%d",
            split,
            dropped,
            len(conversations),
            max_length,
        )
    return ChatEncoded(ids, labels, truncated, dropped)


def collate_chat(data: ChatEncoded, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch padded on the right to its longest row; labels -100 off the assistant turns."""
    rows = [data.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, index in enumerate(indices):
        row = data.input_ids[index]
        input_ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        labels[r, : len(row)] = torch.tensor(data.token_labels[index], dtype=torch.long)
        attention[r, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
