"""Scores of generated texts against references: sacrebleu BLEU and chrF, rouge-score ROUGE-L.

All are the libraries' own computations. BLEU and chrF are corpus metrics: sacrebleu's segment
statistics (n-gram matches and totals, lengths; every reference of a prompt counted) are kept
per prompt, so the score of any resample of prompts is sacrebleu's formula over summed
statistics, which is what a bootstrap needs. ROUGE-L is per prompt: the best F-measure over
the prompt's references, averaged.

The language picks the units. ``en``: BLEU's ``13a`` tokenizer, ROUGE-L over words (stemmed).
``zh``: BLEU's ``zh`` tokenizer (every CJK character a token; the ``13a`` tokenizer would
see a Chinese sentence as one word), ROUGE-L over characters (rouge-score's own tokenizer
keeps only ``[a-z0-9]``, so Chinese would score 0 against anything). chrF counts character
n-grams in either language.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from conveyor.recipe.generation import Language

__all__ = ["CharTokenizer", "TextScores", "score_texts"]

Indices = npt.NDArray[np.int64]
_BLEU_TOKENIZER = {Language.EN: "13a", Language.ZH: "zh"}


class CharTokenizer:
    """rouge-score's tokenizer interface over characters: every letter or digit one token
    (NFKC, case-folded); spaces, punctuation and symbols dropped, as rouge-score drops them."""

    def tokenize(self, text: str) -> list[str]:
        folded = unicodedata.normalize("NFKC", text).casefold()
        return [ch for ch in folded if unicodedata.category(ch)[0] in "LN"]


@lru_cache(maxsize=2)
def _bleu(language: Language = Language.EN) -> Any:
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(tokenize=_BLEU_TOKENIZER[language])


@lru_cache(maxsize=1)
def _chrf() -> Any:
    from sacrebleu.metrics.chrf import CHRF

    return CHRF()


@lru_cache(maxsize=2)
def _rouge(language: Language = Language.EN) -> Any:
    from rouge_score import rouge_scorer

    if language is Language.ZH:
        return rouge_scorer.RougeScorer(["rougeL"], tokenizer=CharTokenizer())
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@dataclass(frozen=True)
class TextScores:
    """Per-prompt statistics: ``bleu_stats`` (prompts x 10 sacrebleu counts), ``rouge_l``,
    ``chrf_stats`` (prompts x 18 sacrebleu counts)."""

    bleu_stats: npt.NDArray[np.float64]
    rouge_l: npt.NDArray[np.float64]
    chrf_stats: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.rouge_l)

    def bleu(self, rows: Indices | None = None) -> float:
        """Corpus BLEU (0..1) over the prompts ``rows`` (all when None), references and all."""
        stats = self.bleu_stats if rows is None else self.bleu_stats[rows]
        summed = stats.sum(axis=0).tolist()
        return float(_bleu()._compute_score_from_stats(summed).score) / 100

    def chrf(self, rows: Indices | None = None) -> float:
        """Corpus chrF (0..1) over the prompts ``rows`` (all when None), best reference each."""
        stats = self.chrf_stats if rows is None else self.chrf_stats[rows]
        summed = stats.sum(axis=0).tolist()
        return float(_chrf()._compute_score_from_stats(summed).score) / 100

    def mean_rouge_l(self, rows: Indices | None = None) -> float:
        values = self.rouge_l if rows is None else self.rouge_l[rows]
        return float(values.mean()) if len(values) else 0.0

    def metric(self, name: str, rows: Indices | None = None) -> float:
        if name == "bleu":
            return self.bleu(rows)
        return self.chrf(rows) if name == "chrf" else self.mean_rouge_l(rows)


def _best_rouge_l(output: str, references: Sequence[str], language: Language) -> float:
    scorer = _rouge(language)
    return float(max(scorer.score(ref, output)["rougeL"].fmeasure for ref in references))


def score_texts(
    outputs: Sequence[str],
    references: Sequence[Sequence[str]],
    language: Language = Language.EN,
) -> TextScores:
    """Score each output against all references of its prompt (a variable number each)."""
    if len(outputs) != len(references):
        raise ValueError("score_texts: one list of references per output")
    if any(not refs for refs in references):
        raise ValueError("score_texts: every prompt needs at least one reference")
    width = max(len(refs) for refs in references)
    streams: list[list[str | None]] = [
        [refs[i] if i < len(refs) else None for refs in references] for i in range(width)
    ]
    bleu = _bleu(language)._extract_corpus_statistics(list(outputs), streams)
    chrf = _chrf()._extract_corpus_statistics(list(outputs), streams)
    rouge = [
        _best_rouge_l(out, refs, language) for out, refs in zip(outputs, references, strict=True)
    ]
    return TextScores(
        np.asarray(bleu, dtype=np.float64),
        np.asarray(rouge, dtype=np.float64),
        np.asarray(chrf, dtype=np.float64),
    )
