"""Statistics Great Expectations has no expectation for, in plain pandas.

Duplicates, train/eval leakage, class counts and imbalance, length histograms,
and the data profile a trained version keeps so later data can be compared with it
(:func:`data_profile`). Pure functions of frames: no GE, no I/O.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from conveyor.chat import Conversation
from conveyor.profile_format import LENGTH_EDGES, PROFILE_SCHEMA

__all__ = [
    "LENGTH_EDGES",
    "PROFILE_KEY",
    "chat_profile",
    "PROFILE_SCHEMA",
    "WHITESPACE",
    "Overlap",
    "TokenTally",
    "approximate_tokens",
    "class_counts",
    "data_profile",
    "duplicates",
    "imbalance_ratio",
    "leakage",
    "length_histogram",
    "length_summary",
    "normalize_texts",
]

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class TokenTally:
    """Tokens per text, and how many of all of them are the tokenizer's unknown token
    (None: no tokenizer, or one without an unknown token)."""

    lengths: np.ndarray
    unknown: int | None = None


def approximate_tokens(text: str) -> int:
    """Tokens of ``text`` without a tokenizer: a wide character (CJK, full-width forms) counts
    one token, as tokenizers give it at least one; the other characters 4 to a token."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")
    return wide + -(-(len(text) - wide) // _CHARS_PER_TOKEN)


# Where a version keeps its training data's profile: ``VersionRecord.metrics[PROFILE_KEY]``.
PROFILE_KEY = "data_profile"
_EXAMPLES = 5

# Python's str.isspace() characters, for regex classes (``\s`` is 2-3x slower in pyarrow's RE2).
WHITESPACE = "".join(
    chr(code)
    for code in (
        *range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680,
        *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
    )
)  # fmt: skip
# Whitespace that normalization must rewrite: any run of 2+, or one that is not a plain space.
_IRREGULAR_SPACE = f"[{WHITESPACE.replace(' ', '')}]|  "


@dataclass(frozen=True)
class Overlap:
    """Rows of a split whose normalized text also occurs elsewhere (same split or train)."""

    rows: int
    total: int
    examples: list[str]

    @property
    def share(self) -> float:
        return self.rows / self.total if self.total else 0.0


def normalize_texts(texts: pd.Series) -> pd.Series:
    """Case-folded, whitespace-collapsed, stripped text: what counts as 'the same text'."""
    lowered = texts.astype("str").str.lower()
    # Most texts hold single spaces only: rewrite just the others (a regex replace on every
    # row costs ~10x more).
    irregular = lowered.str.contains(_IRREGULAR_SPACE, regex=True, na=False)
    if irregular.any():
        lowered[irregular] = lowered[irregular].str.replace(f"[{WHITESPACE}]+", " ", regex=True)
    return lowered.str.strip()


def duplicates(normalized: pd.Series) -> Overlap:
    """Rows repeating a text seen earlier in the same split (first copies are not counted)."""
    repeated = normalized.duplicated(keep="first") & normalized.notna()
    examples = normalized[repeated].drop_duplicates().head(_EXAMPLES).tolist()
    return Overlap(int(repeated.sum()), len(normalized), examples)


def leakage(train_normalized: pd.Series, other_normalized: pd.Series) -> Overlap:
    """Rows of another split whose normalized text also occurs in train."""
    known = pd.unique(train_normalized.dropna())  # isin against a 1M-row Series is ~50x slower
    shared = other_normalized.isin(known) & other_normalized.notna()
    examples = other_normalized[shared].drop_duplicates().head(_EXAMPLES).tolist()
    return Overlap(int(shared.sum()), len(other_normalized), examples)


def class_counts(labels: pd.Series) -> dict[str, int]:
    """Examples per class (nulls left out), largest first; keys are the labels as text."""
    counts = labels.dropna().astype("str").value_counts()
    return {str(label): int(count) for label, count in counts.items()}


def imbalance_ratio(counts: dict[str, int]) -> float:
    """Largest class count over smallest; 1.0 for balanced data, inf for an empty class."""
    if not counts:
        return 1.0
    smallest = min(counts.values())
    return math.inf if smallest == 0 else max(counts.values()) / smallest


def length_histogram(lengths: pd.Series, edges: Sequence[float] = LENGTH_EDGES) -> list[int]:
    """Counts of text lengths per ``[edge_i, edge_i+1)`` bin."""
    values = lengths.dropna().to_numpy(dtype=float)
    counts, _ = np.histogram(values, bins=np.asarray(edges, dtype=float))
    return [int(count) for count in counts]


def length_summary(lengths: pd.Series) -> dict[str, float]:
    """Min, quantiles, mean and max of text lengths (characters)."""
    values = lengths.dropna()
    if values.empty:
        return {}
    quantiles = values.quantile([0.05, 0.5, 0.95, 0.99]).tolist()
    return {
        "min": float(values.min()),
        "p05": float(quantiles[0]),
        "median": float(quantiles[1]),
        "mean": round(float(values.mean()), 2),
        "p95": float(quantiles[2]),
        "p99": float(quantiles[3]),
        "max": float(values.max()),
    }


def data_profile(frame: pd.DataFrame, text_field: str, label_field: str | None) -> dict[str, Any]:
    """A small, JSON-ready summary of a training split, for drift checks against it later.

    Training stores it as ``metrics["data_profile"]`` of the version it registers.
    """
    lengths = frame[text_field].astype("str").str.len()
    labels = class_counts(frame[label_field]) if label_field else None
    return {
        "schema": PROFILE_SCHEMA,
        "rows": len(frame),
        "labels": labels,
        "length_edges": [edge if math.isfinite(edge) else None for edge in LENGTH_EDGES],
        "length_counts": length_histogram(lengths),
    }


def chat_profile(rows: Sequence[Conversation]) -> dict[str, Any]:
    """The drift reference of chat data: the prompts (every turn before the answer, one per
    line), as a serving worker profiles what clients ask."""
    texts = ["\n".join(m.content for m in c.prompt) for c in rows]
    return data_profile(pd.DataFrame({"text": texts}), "text", None)
