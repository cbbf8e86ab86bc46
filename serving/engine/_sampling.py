"""The next token of each row: greedy at temperature 0 (or below ``GREEDY_BELOW``), else
temperature and top-p sampling with the request's own ``torch.Generator`` (so a seeded
request repeats its text). Each row is sampled on its own: a row whose sampling fails (its
probabilities not finite) fails alone, and the others get their tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from serving.engine.limits import GREEDY_BELOW

__all__ = ["next_tokens"]


def _sample(row: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    probs = torch.softmax(row.float().cpu() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(0) - sorted_probs  # mass of the tokens ranked higher
        cut = before >= top_p  # in float32: a top_p below its range (1e-300) is 0 here
        cut[0] = False  # the first token always stays
        sorted_probs[cut] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=gen))


def next_tokens(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator | None],
) -> tuple[list[int], dict[int, Exception]]:
    """``logits`` [rows, vocab]: one token per row, and the rows whose sampling failed (their
    token is a placeholder 0, never to be used)."""
    greedy = logits.argmax(dim=-1).tolist()
    tokens: list[int] = []
    failed: dict[int, Exception] = {}
    for i, (temperature, top_p, gen) in enumerate(
        zip(temperatures, top_ps, generators, strict=True)
    ):
        if temperature < GREEDY_BELOW or gen is None:
            tokens.append(int(greedy[i]))
            continue
        try:
            tokens.append(_sample(logits[i], temperature, top_p, gen))
        except Exception as exc:  # this row's numbers, not the batch's
            failed[i] = exc
            tokens.append(0)
    return tokens, failed
