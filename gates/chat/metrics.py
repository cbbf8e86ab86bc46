"""Scores of generated texts against references: sacrebleu BLEU and rouge-score ROUGE-L.

Both are the libraries' own computations. BLEU is a corpus metric: sacrebleu's segment
statistics (n-gram matches and totals, lengths; every reference of a prompt counted) are kept
per prompt, so the BLEU of any resample of prompts is sacrebleu's formula over summed
statistics, which is what a bootstrap needs. ROUGE-L is per prompt: the best F-measure over
the prompt's references, averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TextScores", "score_texts"]

Indices = npt.NDArray[np.int64]


@lru_cache(maxsize=1)
def _bleu() -> Any:
    from sacrebleu.metrics.bleu import BLEU

    return BLEU()


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@dataclass(frozen=True)
class TextScores:
    """Per-prompt statistics: ``bleu_stats`` (prompts x 10 sacrebleu counts), ``rouge_l``."""

    bleu_stats: npt.NDArray[np.float64]
    rouge_l: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.rouge_l)

    def bleu(self, rows: Indices | None = None) -> float:
        """Corpus BLEU (0..1) over the prompts ``rows`` (all when None), references and all."""
        stats = self.bleu_stats if rows is None else self.bleu_stats[rows]
        summed = stats.sum(axis=0).tolist()
        return float(_bleu()._compute_score_from_stats(summed).score) / 100

    def mean_rouge_l(self, rows: Indices | None = None) -> float:
        values = self.rouge_l if rows is None else self.rouge_l[rows]
        return float(values.mean()) if len(values) else 0.0

    def metric(self, name: str, rows: Indices | None = None) -> float:
        return self.bleu(rows) if name == "bleu" else self.mean_rouge_l(rows)


def _best_rouge_l(output: str, references: Sequence[str]) -> float:
    scorer = _rouge()
    return float(max(scorer.score(ref, output)["rougeL"].fmeasure for ref in references))


def score_texts(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> TextScores:
    """Score each output against all references of its prompt (a variable number each)."""
    if len(outputs) != len(references):
        raise ValueError("score_texts: one list of references per output")
    if any(not refs for refs in references):
        raise ValueError("score_texts: every prompt needs at least one reference")
    width = max(len(refs) for refs in references)
    streams: list[list[str | None]] = [
        [refs[i] if i < len(refs) else None for refs in references] for i in range(width)
    ]
    stats = _bleu()._extract_corpus_statistics(list(outputs), streams)
    rouge = [_best_rouge_l(out, refs) for out, refs in zip(outputs, references, strict=True)]
    return TextScores(np.asarray(stats, dtype=np.float64), np.asarray(rouge, dtype=np.float64))
