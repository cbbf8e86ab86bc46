"""The next token of each row: greedy at temperature 0, else temperature and top-p sampling
with the request's own ``torch.Generator`` (so a seeded request repeats its text)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["next_tokens"]


def _sample(row: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    probs = torch.softmax(row.float().cpu() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(0) - sorted_probs  # mass of the tokens ranked higher
        sorted_probs[before >= top_p] = 0.0  # the first token always stays
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=gen))


def next_tokens(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """``logits`` [rows, vocab]: one token per row."""
    greedy = logits.argmax(dim=-1).tolist()
    tokens = []
    for i, (temperature, top_p, gen) in enumerate(
        zip(temperatures, top_ps, generators, strict=True)
    ):
        if temperature <= 0 or gen is None:
            tokens.append(int(greedy[i]))
        else:
            tokens.append(_sample(logits[i], temperature, top_p, gen))
    return tokens
