"""The running batch of a decode engine: one left-padded KV cache, its mask and next tokens.

Every row holds one request: its cache columns (left-padded with zeros so that all rows end
at the same column), a 0/1 attention mask over those columns, and the token sampled last,
not yet fed to the model. The requests admitted together are prefilled in one forward pass,
left-padded to the longest prompt (``prefill_inputs``); their rows join by left-padding
whichever side is shorter; a finished one leaves by ``index_select``; columns that are padding
in every row are trimmed. Positions are explicit (the count of a row's real tokens before
it), so padding never shifts a row's rotary positions: each row computes what it would
compute alone.

The cache is a plain ``DynamicCache`` of full-attention layers for every architecture, also
for sliding-window models (Gemma 3): their mask still limits what each layer attends to, and
since a row's real tokens are contiguous and end at the last column, column distances are
token distances; a sliding cache would drop columns from rows at different offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["KVBatch", "prefill_inputs"]

PAD_ID = 0  # any id will do: padding is masked out and never attended to


def _layers(cache: Any) -> list[Any]:
    layers = list(getattr(cache, "layers", []))
    for layer in layers:
        if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
            raise TypeError(f"the decode engine needs full-attention cache layers, not {layer}")
    return layers


def _left_pad(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """``tensor`` [batch, heads, seq, dim] with ``columns`` zero columns before ``seq``."""
    if columns == 0:
        return tensor
    shape = (*tensor.shape[:2], columns, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


def prefill_inputs(prompts: Sequence[Sequence[int]], device: torch.device) -> dict[str, Any]:
    """The forward arguments that prefill ``prompts`` together, left-padded to the longest;
    each row's positions count its own tokens, as if it ran alone."""
    from transformers import DynamicCache

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "past_key_values": DynamicCache(),  # full-attention layers, whatever the model
        "use_cache": True,
    }


class KVBatch:
    """Rows of requests decoding together; row ``i`` is ``ids[i]`` everywhere."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.next_tokens = torch.zeros((0, 1), dtype=torch.long)

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])

    def join(self, cache: Any, mask: torch.Tensor, next_tokens: Sequence[int]) -> None:
        """Add the rows of a prefill: ``cache`` holds one row per request, ``mask`` [rows,
        columns] is 1 on its real columns (padding on the left), ``next_tokens`` one per row."""
        device = self.mask.device if len(self) else _layers(cache)[0].keys.device
        mask = mask.to(device=device, dtype=torch.long)
        tokens = torch.tensor(list(next_tokens), dtype=torch.long, device=device).view(-1, 1)
        if len(tokens) != len(mask):
            raise ValueError(f"{len(mask)} rows of mask but {len(tokens)} next tokens")
        if self.cache is None or len(self) == 0:
            self.cache, self.mask, self.next_tokens = cache, mask, tokens
            self._trim()
            return
        width = max(self.columns, int(mask.shape[1]))
        pad_old, pad_new = width - self.columns, width - int(mask.shape[1])
        for old, new in zip(_layers(self.cache), _layers(cache), strict=True):
            old.keys = torch.cat([_left_pad(old.keys, pad_old), _left_pad(new.keys, pad_new)])
            old.values = torch.cat([_left_pad(old.values, pad_old), _left_pad(new.values, pad_new)])
        zeros = self.mask.new_zeros
        self.mask = torch.cat(
            [
                torch.cat([zeros((len(self), pad_old)), self.mask], dim=1),
                torch.cat([zeros((len(mask), pad_new)), mask], dim=1),
            ]
        )
        self.next_tokens = torch.cat([self.next_tokens, tokens])
        self._trim()

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in this order); drop the padding no kept row needs."""
        if len(rows) == len(self):
            return
        if not rows:
            self._reset()
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        for layer in _layers(self.cache):
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.next_tokens = self.next_tokens.index_select(0, index)
        self._trim()

    def _trim(self) -> None:
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else self.columns
        if first == 0:
            return
        for layer in _layers(self.cache):
            layer.keys = layer.keys[:, :, first:].contiguous()
            layer.values = layer.values[:, :, first:].contiguous()
        self.mask = self.mask[:, first:]

    def step_inputs(self) -> dict[str, Any]:
        """The forward arguments that feed every row its next token."""
        positions = self.mask.sum(dim=1, keepdim=True)  # the real tokens before this one
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self), 1))], dim=1)
        return {
            "input_ids": self.next_tokens,
            "attention_mask": self.mask,
            "position_ids": positions,
            "past_key_values": self.cache,
            "use_cache": True,
        }

    def set_next(self, tokens: torch.Tensor) -> None:
        self.next_tokens = tokens.view(-1, 1).to(self.mask.device)
