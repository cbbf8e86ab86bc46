"""Token lengths of conversations for the truncation check: the base's chat template if any.

The template renders each conversation as the model will see it; without one (a base with
no chat template, or none at hand) the count is an approximation that the report names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.chat import Conversation
from conveyor.gguf_base import locate_gguf, parse_gguf_base
from conveyor.pretrained import SMOLLM2, load_gguf_tokenizer, smollm2_gguf
from data_checks.stats import TokenTally, approximate_tokens

__all__ = [
    "APPROXIMATE_CHAT",
    "ChatTokens",
    "approximate_chat_tokens",
    "chat_token_counter",
    "template_chat_tokens",
]

APPROXIMATE_CHAT = (
    "approximation: one token per CJK or full-width character, ceil(other characters / 4), "
    "+ 4 template tokens per turn"
)
ChatTokens = Callable[[Sequence[Conversation]], TokenTally]


def approximate_chat_tokens(conversations: Sequence[Conversation]) -> TokenTally:
    """Tokens per conversation without a tokenizer (:func:`approximate_tokens`), 4 per turn."""
    return TokenTally(
        np.asarray(
            [sum(approximate_tokens(m.content) + 4 for m in c.messages) for c in conversations],
            dtype=np.int64,
        )
    )


def template_chat_tokens(tokenizer: Any) -> ChatTokens:
    """Tokens per conversation as the tokenizer's chat template renders it, and how many are
    its unknown token (None for a tokenizer without one)."""
    unknown_id = getattr(tokenizer, "unk_token_id", None)

    def count(conversations: Sequence[Conversation]) -> TokenTally:
        texts = [tokenizer.apply_chat_template(c.as_dicts(), tokenize=False) for c in conversations]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        lengths = np.asarray([len(row) for row in ids], dtype=np.int64)
        if unknown_id is None:
            return TokenTally(lengths)
        return TokenTally(lengths, sum(list(row).count(unknown_id) for row in ids))

    return count


def chat_token_counter(base: str) -> tuple[ChatTokens, str]:
    """Count with the base's own chat template where it has one, else approximate."""
    from transformers import AutoTokenizer

    tokenizer: Any = None
    spec = parse_gguf_base(base) if ".gguf" in base else None
    if base == SMOLLM2 or spec is not None:  # the tokenizer is in the GGUF: no conversion
        gguf = smollm2_gguf() if spec is None else locate_gguf(spec)
        tokenizer, source = load_gguf_tokenizer(gguf), str(gguf)
    elif Path(base).is_absolute() and (Path(base) / "tokenizer_config.json").is_file():
        tokenizer, source = AutoTokenizer.from_pretrained(base), base
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return template_chat_tokens(tokenizer), f"chat template of {source}"
    return approximate_chat_tokens, APPROXIMATE_CHAT
