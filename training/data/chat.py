"""Chat splits to token ids and per-token labels (assistant turns only), and their batches.

Each conversation is rendered with the tokenizer's chat template
(:func:`conveyor.chat.render_for_training`) and cut at ``max_length``; a conversation whose
answer lies wholly past the cut has nothing to learn and is dropped (and counted).
Batches come from :func:`training.data.batches.collate`: padded to their longest row, and padding
is never a label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.chat import IGNORE_INDEX, Conversation, read_chat_split, render_for_training
from training.data.batches import Encoded

__all__ = ["ChatEncoded", "encode_chat", "read_chat"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatEncoded:
    """The kept conversations as :class:`Encoded` (with token labels); how many were cut."""

    data: Encoded
    truncated: int = 0
    dropped: int = 0

    @property
    def trained_tokens(self) -> int:
        rows = self.data.token_labels or []
        return sum(sum(1 for t in row if t != IGNORE_INDEX) for row in rows)


def read_chat(path: Path) -> list[Conversation]:
    """A chat split for training: the first bad row stops it, naming file:line and field."""
    return read_chat_split(path, strict=True)


def read_training_chats(paths: Sequence[Path]) -> list[Conversation]:
    """:func:`read_chat` of each file in turn (train, then the recipe's ``data.extra``)."""
    return [conversation for path in paths for conversation in read_chat(path)]


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
    return ChatEncoded(Encoded(ids, [], labels), truncated, dropped)
