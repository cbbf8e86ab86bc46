"""The limits a decode request is held to, each defined once and read by every room.

The sampling bounds are read by the engine (:class:`~serving.engine.params.SamplingParams`),
the OpenAI request models (:mod:`serving.api.openai.protocol`) and so by the OpenAPI document
generated from them. The model's context is one rule (:func:`context_length`), applied once
when a version loads: its decode engine holds the result, and the version carries it.
"""

from __future__ import annotations

from typing import Any

from serving.refusal import InvalidRequest

__all__ = [
    "GREEDY_BELOW",
    "MAX_SEED",
    "MAX_TEMPERATURE",
    "MAX_TOP_P",
    "MIN_MAX_TOKENS",
    "MIN_SEED",
    "MIN_TEMPERATURE",
    "TOP_P_ABOVE",
    "check_fits",
    "context_length",
]

MIN_TEMPERATURE = 0.0  # greedy
MAX_TEMPERATURE = 2.0  # OpenAI's bound, as README "Calling a language model" says
# A temperature above 0 but below this decodes greedily: dividing logits by 1e-38 overflows
# to inf, and at 1e-3 the most likely token already takes all the probability.
GREEDY_BELOW = 1e-3
MIN_SEED = -(2**63)  # what torch.Generator.manual_seed takes
MAX_SEED = 2**64 - 1
TOP_P_ABOVE = 0.0  # top_p must be above this (0 would keep no token)
MAX_TOP_P = 1.0
MIN_MAX_TOKENS = 1
_NO_LIMIT = 10**12  # transformers' "this tokenizer has no limit" is int(1e30)


def context_length(model: Any, tokenizer: Any) -> int | None:
    """How many tokens ``model`` holds (prompt and completion together): its config's
    positions (``max_position_embeddings``, ``n_positions``), else the tokenizer's
    ``model_max_length``; None when neither says. A model in llama.cpp (a GGUF version)
    holds what each of its slots holds (``LlamaCppModel.context``)."""
    slot = getattr(model, "slots", None) and getattr(model, "context", None)
    if isinstance(slot, int) and not isinstance(slot, bool) and slot > 0:
        return slot
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < _NO_LIMIT:
        return limit
    return None


def check_fits(prompt_tokens: int, max_tokens: int, context: int) -> None:
    """InvalidRequest when a prompt is empty or it and its answer cannot fit ``context``."""
    if prompt_tokens < 1:
        raise InvalidRequest("the prompt is empty: give at least one token", field="prompt")
    if prompt_tokens + max_tokens > context:
        raise InvalidRequest(
            f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
            f"{prompt_tokens + max_tokens} in all, more than this model's context of {context}",
            field="max_tokens",
        )
