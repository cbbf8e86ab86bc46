"""Run a causal LM on chat prompts: greedy answers, and the loss of the references.

Both take a loaded model and its tokenizer (any ``AutoModelForCausalLM``, a LoRA adapter on
its base included; answers also from a GGUF version in llama.cpp, which gives no losses).
Prompts are rendered with the tokenizer's chat template, sorted by
length into batches and padded on the left, so every row's answer starts at the same
position; answers come back in the order of the prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from conveyor.chat import IGNORE_INDEX, Conversation, Message, render_for_training, render_prompt
from conveyor.llamacpp import LlamaCppModel
from conveyor.progress import Ticker

__all__ = ["answer_text", "generate_answers", "reference_losses"]

log = logging.getLogger(__name__)


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad)


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int = 1024,
    what: str = "answers generated",
) -> list[str]:
    """The greedy answer to each prompt (special tokens dropped, whitespace stripped).

    A GGUF version answers through llama.cpp (:class:`~conveyor.llamacpp.LlamaCppModel`),
    the backend it is served with, all its slots at once."""
    import torch

    encoded = [
        tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"][
            -max_prompt_tokens:
        ]
        for p in prompts
    ]
    if isinstance(model, LlamaCppModel):
        return _llamacpp_answers(model, encoded, max_new_tokens)
    pad = _pad_id(tokenizer)
    eos = tokenizer.eos_token_id
    answers = [""] * len(encoded)
    model.eval()
    ticker = Ticker(log, what, len(encoded))
    for batch in _batches([len(ids) for ids in encoded], batch_size):
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            tokens = encoded[index]
            ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens) :] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
            )
        for row, index in enumerate(batch):
            answers[index] = answer_text(tokenizer, out[row, width:].tolist())
        ticker.advance(len(batch))
    return answers


def _llamacpp_answers(
    model: LlamaCppModel, encoded: Sequence[Sequence[int]], max_new_tokens: int
) -> list[str]:
    with ThreadPoolExecutor(max_workers=model.slots, thread_name_prefix="gate-llamacpp") as pool:
        chunks = list(pool.map(lambda ids: model.complete(ids, max_new_tokens), encoded))
    return [chunk.text.strip().rstrip("\ufffd").rstrip() for chunk in chunks]


def answer_text(tokenizer: Any, ids: Sequence[int]) -> str:
    """The answer's text, stripped; an answer cut by ``max_new_tokens`` inside a character (a
    byte-level tokenizer spells a CJK character in 2 or 3 tokens) ends in U+FFFD, which is
    dropped, as serving never sends half a character."""
    text = str(tokenizer.decode(list(ids), skip_special_tokens=True))
    return text.strip().rstrip("\ufffd").rstrip()


def reference_losses(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    *,
    max_length: int,
    batch_size: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Summed negative log-likelihood of each conversation's assistant tokens, and their count."""
    import torch

    rendered = [render_for_training(tokenizer, c, max_length) for c in conversations]
    pad = _pad_id(tokenizer)
    nll = np.zeros(len(rendered), dtype=np.float64)
    counts = np.zeros(len(rendered), dtype=np.int64)
    model.eval()
    for batch in _batches([len(r.input_ids) for r in rendered], batch_size):
        width = max(len(rendered[i].input_ids) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            item = rendered[index]
            ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
            labels[row, : len(item.labels)] = torch.tensor(item.labels)
            mask[row, : len(item.input_ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        shifted = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
        )
        for row, index in enumerate(batch):
            nll[index] = float(losses[row].sum())
            counts[index] = int((shifted[row] != IGNORE_INDEX).sum())
    return nll, counts
