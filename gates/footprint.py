"""Speed and memory beside quality: how a compressed candidate compares with its parent.

A pure function of two evaluations' metrics (the gates measure both models in the same run:
forward latency at batch 1 and 32, or a language model's greedy answer tokens per second;
weights on disk), so a parity verdict can say what the compression bought next to what it
cost.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["footprint"]

_SHOWN = (
    ("p50_ms_batch1", "p50 batch 1", "ms"),
    ("p50_ms_batch32", "p50 batch 32", "ms"),
    ("answer_tokens_per_s", "answers", "tokens/s"),  # a language model's greedy answers
    ("model_size_mb", "weights", "MB"),
)


def footprint(candidate: Mapping[str, float], parent: Mapping[str, float]) -> str:
    """``"p50 batch 1 2.1 ms vs 4.3 ms (0.49x); ..."``: each figure both have, the candidate's
    first, with its ratio to the parent's; empty when they share none."""
    parts = []
    for key, name, unit in _SHOWN:
        ours, theirs = candidate.get(key), parent.get(key)
        if ours is None or theirs is None:
            continue
        ratio = f" ({ours / theirs:.2f}x)" if theirs else ""
        parts.append(f"{name} {ours:.1f} {unit} vs {theirs:.1f} {unit}{ratio}")
    return "; ".join(parts)
