"""What one version was asked and answered: an additive profile of inputs and predictions.

Counts only, never texts: a text-length histogram over the training profile's bins
(:data:`conveyor.profile_format.LENGTH_EDGES`), predicted-label counts, a confidence histogram,
tokens and unknown tokens. Profiles from many workers (and many requests) merge by adding
counts, so each worker publishes its own in its heartbeat and the monitor sums them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.profile_format import LENGTH_EDGES, PROFILE_SCHEMA

__all__ = [
    "CONFIDENCE_BINS",
    "PROFILE_STATS_KEY",
    "InputProfile",
    "RollingProfile",
    "merge_profiles",
    "profile_of",
]

PROFILE_STATS_KEY = "profile"  # where a heartbeat keeps it: ``WorkerRecord.stats[version]``
CONFIDENCE_BINS = 10  # equal bins over [0, 1]
MAX_LABELS = 1024  # a model's label set is fixed; this only bounds a malformed heartbeat
_LENGTH_BINS = len(LENGTH_EDGES) - 1
_INNER_EDGES = LENGTH_EDGES[1:-1]


def _length_bin(chars: int) -> int:
    """The ``[edge_i, edge_i+1)`` bin, as ``numpy.histogram`` puts it for the training profile."""
    return min(bisect.bisect_right(_INNER_EDGES, chars), _LENGTH_BINS - 1)


def _counts(values: Any, size: int) -> list[int]:
    counts = [int(x) for x in values] if isinstance(values, list) else []
    return counts if len(counts) == size else [0] * size


@dataclass
class InputProfile:
    """Texts classified by one version, their lengths, predicted labels, scores and tokens."""

    texts: int = 0
    length_counts: list[int] = field(default_factory=lambda: [0] * _LENGTH_BINS)
    labels: dict[str, int] = field(default_factory=dict)
    confidence_counts: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    confidence_sum: float = 0.0
    tokens: int = 0
    unknown_tokens: int = 0
    scored: int = 0  # texts with a label and a score (a language model's prompts have none)

    def observe(
        self, chars: int, label: str | None, score: float | None, tokens: int, unknown: int
    ) -> None:
        """One text: its length in characters, the answer (a classifier's label and score;
        None for a language model's prompt), its token counts."""
        self.texts += 1
        self.length_counts[_length_bin(chars)] += 1
        self.tokens += tokens
        self.unknown_tokens += unknown
        if label is None or score is None:
            return
        score = min(max(score, 0.0), 1.0) if math.isfinite(score) else 0.0
        self.scored += 1
        if label in self.labels or len(self.labels) < MAX_LABELS:
            self.labels[label] = self.labels.get(label, 0) + 1
        self.confidence_counts[min(int(score * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
        self.confidence_sum += score

    def merge(self, other: InputProfile) -> None:
        """Add another profile's counts to this one."""
        self.texts += other.texts
        self.length_counts = [
            a + b for a, b in zip(self.length_counts, other.length_counts, strict=True)
        ]
        for label, count in other.labels.items():
            if label in self.labels or len(self.labels) < MAX_LABELS:
                self.labels[label] = self.labels.get(label, 0) + count
        self.confidence_counts = [
            a + b for a, b in zip(self.confidence_counts, other.confidence_counts, strict=True)
        ]
        self.confidence_sum += other.confidence_sum
        self.tokens += other.tokens
        self.unknown_tokens += other.unknown_tokens
        self.scored += other.scored

    @property
    def unknown_token_rate(self) -> float:
        return self.unknown_tokens / self.tokens if self.tokens else 0.0

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.scored if self.scored else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "length_counts": list(self.length_counts),
            "labels": dict(self.labels),
            "confidence_counts": list(self.confidence_counts),
            "confidence_sum": round(self.confidence_sum, 6),
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "scored": self.scored,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputProfile:
        labels = data.get("labels")
        return cls(
            texts=int(data.get("texts", 0)),
            length_counts=_counts(data.get("length_counts"), _LENGTH_BINS),
            labels={str(k): int(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            confidence_counts=_counts(data.get("confidence_counts"), CONFIDENCE_BINS),
            confidence_sum=float(data.get("confidence_sum", 0.0)),
            tokens=int(data.get("tokens", 0)),
            unknown_tokens=int(data.get("unknown_tokens", 0)),
            # a heartbeat from before ``scored`` existed came from a classifier: all scored
            scored=int(data.get("scored", data.get("texts", 0))),
        )

    def as_data_profile(self) -> dict[str, Any]:
        """The shape of :func:`data_checks.stats.data_profile`, for ``compare_profiles``."""
        return {
            "schema": PROFILE_SCHEMA,
            "rows": self.texts,
            "labels": dict(self.labels) if self.scored else None,
            "length_edges": [edge if math.isfinite(edge) else None for edge in LENGTH_EDGES],
            "length_counts": list(self.length_counts),
        }


def profile_of(
    texts: Sequence[str],
    results: Sequence[Mapping[str, Any]],
    token_ids: Sequence[Sequence[int]],
    unk_token_id: int | None,
) -> InputProfile:
    """The profile of one request: each text with its answer and its token ids (a language
    model's prompts come with ``{"label": None, "score": None}``)."""
    profile = InputProfile()
    for text, answer, ids in zip(texts, results, token_ids, strict=True):
        unknown = sum(1 for i in ids if i == unk_token_id) if unk_token_id is not None else 0
        label, score = answer.get("label"), answer.get("score")
        profile.observe(
            len(text),
            None if label is None else str(label),
            None if score is None else float(score),
            len(ids),
            unknown,
        )
    return profile


def merge_profiles(parts: Iterable[Mapping[str, Any]]) -> InputProfile:
    """Sum profiles published by several workers (``as_dict`` form)."""
    total = InputProfile()
    for part in parts:
        total.merge(InputProfile.from_dict(part))
    return total


class RollingProfile:
    """The last one to two windows of a worker's profile: ``recent`` drops what is older.

    Two profiles are kept, the current window and the one before; when the current one is
    ``window_seconds`` old it becomes the previous one. A snapshot is their sum.
    """

    def __init__(self, window_seconds: float, now: float) -> None:
        self.window_seconds = window_seconds
        self._started = now
        self._current = InputProfile()
        self._previous = InputProfile()

    def _roll(self, now: float) -> None:
        if now - self._started >= 2 * self.window_seconds:
            self._previous, self._current, self._started = InputProfile(), InputProfile(), now
        elif now - self._started >= self.window_seconds:
            self._previous, self._current, self._started = self._current, InputProfile(), now

    def add(self, profile: InputProfile, now: float) -> None:
        self._roll(now)
        self._current.merge(profile)

    def snapshot(self, now: float) -> InputProfile:
        self._roll(now)
        total = InputProfile()
        total.merge(self._previous)
        total.merge(self._current)
        return total
