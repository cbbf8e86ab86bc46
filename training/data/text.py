"""Text splits to token ids: class ids for a classifier, equal blocks for a language model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.splits import DataError, read_split
from training.data.batches import Encoded
from training.errors import LabelMismatchError

__all__ = ["LabelMap", "encode_causal_lm", "encode_classification", "read_texts"]


@dataclass(frozen=True)
class LabelMap:
    """Class names in a fixed order; the index is the model's label id."""

    names: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> LabelMap:
        return cls(tuple(sorted(set(labels))))

    def ids(self, labels: Sequence[str], split: str) -> list[int]:
        index = {name: i for i, name in enumerate(self.names)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise LabelMismatchError(
                f"data.{split}: {len(unknown)} label(s) not in the train split ({shown}); "
                "every label must occur in train"
            )
        return [index[label] for label in labels]

    def as_dict(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def read_texts(path: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str]]:
    """Texts (and labels as strings) of one split; missing columns name the file."""
    frame = read_split(path)
    for column in (text_field, label_field):
        if column is not None and column not in frame.columns:
            found = ", ".join(map(str, frame.columns))
            raise DataError(path, f"no column '{column}' (columns: {found})")
    texts = frame[text_field].fillna("").astype(str).tolist()
    labels = frame[label_field].astype(str).tolist() if label_field else []
    return texts, labels


def read_training_texts(
    paths: Sequence[Path], text_field: str, label_field: str | None
) -> tuple[list[str], list[str]]:
    """:func:`read_texts` of each file in turn (train, then the recipe's ``data.extra``)."""
    texts: list[str] = []
    labels: list[str] = []
    for path in paths:
        more_texts, more_labels = read_texts(path, text_field, label_field)
        texts += more_texts
        labels += more_labels
    return texts, labels


def encode_classification(
    tokenizer: Any, texts: list[str], label_ids: list[int], max_length: int
) -> Encoded:
    """Tokenize without padding (padding happens per batch)."""
    ids = tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]
    return Encoded([list(row) for row in ids], list(label_ids))


def encode_causal_lm(tokenizer: Any, texts: list[str], block_size: int) -> Encoded:
    """Concatenate the texts (EOS between) and cut into equal blocks: no padding at all."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for row in tokenizer(texts, padding=False, truncation=False)["input_ids"]:
        stream.extend(row)
        if eos is not None:
            stream.append(eos)
    count = len(stream) // block_size
    if count == 0:
        count, block_size = 1, len(stream)
    blocks = [stream[i * block_size : (i + 1) * block_size] for i in range(count)]
    return Encoded(blocks, [])
