"""Batch order, bucketing, dynamic padding, labels: pure functions, no model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from training.data import (
    Encoded,
    LabelMap,
    collate,
    encode_causal_lm,
    epoch_batches,
    read_texts,
)
from training.errors import LabelMismatchError

pytestmark = pytest.mark.unit


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 60) for _ in range(n)]


def test_epoch_covers_every_example_once() -> None:
    batches = epoch_batches(_lengths(1000), 16, seed=1, epoch=0)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    assert all(len(b) <= 16 for b in batches)


def test_order_is_a_function_of_seed_and_epoch() -> None:
    lengths = _lengths(500)
    assert epoch_batches(lengths, 8, 3, 2) == epoch_batches(lengths, 8, 3, 2)
    assert epoch_batches(lengths, 8, 3, 2) != epoch_batches(lengths, 8, 3, 3)
    assert epoch_batches(lengths, 8, 3, 2) != epoch_batches(lengths, 8, 4, 2)


def _padding(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_bucketing_cuts_padding() -> None:
    lengths = _lengths(4000)
    bucketed = _padding(lengths, epoch_batches(lengths, 32, 0, 0, bucket=True))
    shuffled = _padding(lengths, epoch_batches(lengths, 32, 0, 0, bucket=False))
    assert bucketed < shuffled / 5


def test_collate_pads_to_the_longest_row_only() -> None:
    data = Encoded([[5, 6, 7], [8], [9, 10, 11, 12, 13]], [0, 1, 2])
    batch = collate(data, [0, 1], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [0, 1]


def test_collate_causal_lm_masks_padding_out_of_the_loss() -> None:
    batch = collate(Encoded([[1, 2, 3], [4]], []), [0, 1], pad_id=99)
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]
    assert batch["labels"].dtype == torch.long


def test_label_map_is_sorted_and_refuses_unknown_labels() -> None:
    labels = LabelMap.from_labels(["b", "a", "b", "c"])
    assert labels.names == ("a", "b", "c")
    assert labels.ids(["c", "a"], "train") == [2, 0]
    with pytest.raises(LabelMismatchError, match=r"data.validation: 1 label\(s\) not in the train"):
        labels.ids(["a", "zebra"], "validation")


class _WordTokenizer:
    eos_token_id = 0

    def __call__(self, texts: list[str], **_: object) -> dict[str, list[list[int]]]:
        return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


def test_causal_lm_blocks_are_packed_without_padding() -> None:
    data = encode_causal_lm(_WordTokenizer(), ["a bb ccc", "dddd e"], block_size=3)
    assert data.input_ids == [[1, 2, 3], [0, 4, 1]]
    assert data.labels == []


def test_read_texts_names_a_missing_column(tmp_path: Path) -> None:
    from conveyor.splits import DataError

    split = tmp_path / "train.jsonl"
    split.write_text('{"text": "hi", "intent": "greet"}\n')
    with pytest.raises(DataError, match="no column 'label'"):
        read_texts(split, "text", "label")
