"""Write a Hugging Face causal LM as a GGUF file llama.cpp loads, with ``gguf``'s own writer,
tensor-name map and quantizers.

Supported: Llama (SmolLM2), Qwen2 and Gemma 3; where each architecture's hyperparameters and
weights go is :mod:`conversion.gguf_layout`'s. Quantization (``QUANTS``):

- ``f16``: every matrix in half precision;
- ``q8_0``: every matrix in 8-bit blocks of 32;
- ``q4_0``: matrices in 4-bit blocks, the token embedding (also the output when tied) kept
  in 8 bits, as llama.cpp's own 4-bit recipes keep their most sensitive matrix wider.

Norms and other vectors stay float32. ``q4_k_m`` is not offered: ``gguf``'s Python
quantizers write the legacy block formats and the K-quants only decode.

The tokenizer is carried over: from the base's own GGUF when the version came from one
(every ``tokenizer.*`` field, chat template included, copied as it was), else built from the
Hugging Face tokenizer folder with ``gguf.vocab`` (the byte-level BPE of Llama and Qwen2; a
Gemma 3 version's tokenizer comes only from its base's GGUF).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from conversion.errors import ConversionError
from conversion.gguf_layout import (
    GgufLayout,
    gguf_tensor_count,
    gguf_tensors,
    layout_for,
    write_hyperparameters,
)

__all__ = ["QUANTS", "write_gguf"]

log = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_0")
_BLOCK = 32  # the legacy quants' block size along a row
_CHAT_TEMPLATE = "tokenizer.chat_template"
# llama.cpp's pre-tokenizer for a byte-level BPE folder, per architecture (SmolLM2's splits
# as llama.cpp's default does; Qwen2's has its own digit and CJK rules)
_BPE_PRE = {"llama": "default", "qwen2": "qwen2"}


def _file_type(quant: str) -> int:
    from gguf import LlamaFileType

    return {
        "f16": LlamaFileType.MOSTLY_F16,
        "q8_0": LlamaFileType.MOSTLY_Q8_0,
        "q4_0": LlamaFileType.MOSTLY_Q4_0,
    }[quant]


def _qtype(name: str, data: npt.NDArray[Any], quant: str) -> Any:
    """The GGML type one tensor is stored in, under ``quant``."""
    from gguf import GGMLQuantizationType as Q

    if data.ndim < 2:
        return Q.F32
    if quant == "f16" or data.shape[-1] % _BLOCK:
        return Q.F16
    if quant == "q4_0" and not name.startswith(("token_embd", "output.")):
        return Q.Q4_0
    return Q.Q8_0


def _encoded(data: npt.NDArray[Any], qtype: Any) -> npt.NDArray[Any]:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    if qtype == Q.F32:
        return data.astype(np.float32)
    if qtype == Q.F16:
        return data.astype(np.float16)
    return quantize(data.astype(np.float32), qtype)


def _tensors(writer: Any, model: Any, layout: GgufLayout, quant: str) -> None:
    total = gguf_tensor_count(model)
    started = time.monotonic()
    for index, (name, data) in enumerate(gguf_tensors(model, layout), start=1):
        qtype = _qtype(name, data, quant)
        writer.add_tensor(name, _encoded(data, qtype), raw_dtype=qtype)
        if index % 50 == 0 or index == total:
            elapsed = time.monotonic() - started
            eta = elapsed / index * (total - index)
            log.info(
                "gguf %s: %d/%d tensors, %.0f s, about %.0f s left",
                quant, index, total, elapsed, eta,
            )  # fmt: skip


def _tokenizer_from_gguf(writer: Any, source: Path) -> None:
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(source)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = GGUFValueType(field.types[0])
        sub = GGUFValueType(field.types[1]) if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def _tokenizer_from_folder(
    writer: Any, tokenizer: Any, folder: Path, vocab_size: int, arch: str
) -> None:
    import gguf
    from gguf.vocab import BpeVocab, SpecialVocab

    if arch not in _BPE_PRE:
        raise ConversionError(
            f"{folder}: a {arch} tokenizer is carried over only from the base's own GGUF "
            f"(model.base: <file>.gguf@sha256:...); from a folder this converter writes the "
            f"byte-level BPE of {', '.join(_BPE_PRE)}"
        )
    try:
        vocab = BpeVocab(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise ConversionError(
            f"{folder}: the tokenizer is not a byte-level BPE tokenizer this converter writes "
            f"({exc})"
        ) from exc
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    tokens, types = [], []
    for token_id, (text, _score, kind) in enumerate(vocab.all_tokens()):
        tokens.append(text)
        types.append(gguf.TokenType.CONTROL if token_id in special else kind)
    for pad in range(len(tokens), vocab_size):  # rows the model has beyond the tokenizer's
        tokens.append(f"[PAD{pad}]".encode())
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_BPE_PRE[arch])
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    SpecialVocab(folder, load_merges=True, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template and _CHAT_TEMPLATE not in writer.kv_data[0]:
        writer.add_chat_template(template)  # when SpecialVocab did not find it on disk


def write_gguf(
    model: Any,
    tokenizer: Any,
    path: Path,
    *,
    quant: str,
    tokenizer_folder: Path,
    source_gguf: Path | None = None,
    name: str = "",
) -> None:
    """Write ``model`` (a plain ``*ForCausalLM`` of an architecture in
    :data:`conversion.gguf_layout.LAYOUTS`, adapters merged) to ``path``."""
    from gguf import GGUFWriter

    if quant not in QUANTS:
        raise ConversionError(f"quant {quant!r} is not one of {', '.join(QUANTS)}")
    layout = layout_for(model)
    writer = GGUFWriter(path, layout.arch)
    writer.add_name(name or path.stem)
    writer.add_file_type(int(_file_type(quant)))
    write_hyperparameters(writer, model.config, layout)
    if source_gguf is not None:
        _tokenizer_from_gguf(writer, source_gguf)
    else:
        vocab_size = int(model.config.vocab_size)
        _tokenizer_from_folder(writer, tokenizer, tokenizer_folder, vocab_size, layout.arch)
    _tensors(writer, model, layout, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
