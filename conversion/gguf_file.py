"""Write a Hugging Face causal LM as a GGUF file llama.cpp loads, with ``gguf``'s own writer,
tensor-name map and quantizers.

Supported: the Llama architecture (SmolLM2 and the tiny test models). Each weight gets its
GGUF name from ``gguf.get_tensor_name_map``; the query and key projections are reordered
from Hugging Face's rotary layout (each head's two halves) to llama.cpp's (interleaved
pairs); a tied output matrix is not written twice. Quantization (``QUANTS``):

- ``f16``: every matrix in half precision;
- ``q8_0``: every matrix in 8-bit blocks of 32;
- ``q4_0``: matrices in 4-bit blocks, the token embedding (also the output when tied) kept
  in 8 bits, as llama.cpp's own 4-bit recipes keep their most sensitive matrix wider.

Norms and other vectors stay float32. ``q4_k_m`` is not offered: ``gguf``'s Python
quantizers write the legacy block formats and the K-quants only decode.

The tokenizer is carried over: from the base's own GGUF when the version came from one
(every ``tokenizer.*`` field, chat template included, copied as it was), else built from the
Hugging Face tokenizer folder with ``gguf.vocab``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from conversion.errors import ConversionError

__all__ = ["QUANTS", "SUPPORTED_ARCHITECTURES", "write_gguf"]

log = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_0")
SUPPORTED_ARCHITECTURES = ("llama",)
_BLOCK = 32  # the legacy quants' block size along a row
_CHAT_TEMPLATE = "tokenizer.chat_template"


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


def rotary_to_interleaved(weight: npt.NDArray[Any], heads: int) -> npt.NDArray[Any]:
    """A q/k projection's rows from Hugging Face's rotary order (per head: the first half of
    the dimensions, then the second) to the interleaved pairs llama.cpp rotates."""
    rows = weight.shape[0]
    half = rows // heads // 2
    by_head = weight.reshape(heads, 2, half, *weight.shape[1:])
    return by_head.swapaxes(1, 2).reshape(weight.shape)


def _config_value(config: Any, name: str, default: Any = None) -> Any:
    value = getattr(config, name, None)
    if value is None and name == "rope_theta":
        value = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    return default if value is None else value


def check_architecture(model: Any) -> None:
    """ConversionError naming the architecture when it is not one this converter writes."""
    arch = getattr(model.config, "model_type", None)
    if arch not in SUPPORTED_ARCHITECTURES:
        names = type(model).__name__
        raise ConversionError(
            f"cannot convert a {arch!r} model ({names}) to GGUF: supported architectures "
            f"are {', '.join(SUPPORTED_ARCHITECTURES)}"
        )


def _hyperparameters(writer: Any, config: Any) -> None:
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(_config_value(config, "num_key_value_heads", heads)))
    writer.add_layer_norm_rms_eps(float(_config_value(config, "rms_norm_eps", 1e-5)))
    writer.add_rope_freq_base(float(_config_value(config, "rope_theta", 10000.0)))
    writer.add_rope_dimension_count(int(_config_value(config, "head_dim", hidden // heads)))
    writer.add_vocab_size(int(config.vocab_size))


def _tensors(writer: Any, model: Any, quant: str) -> None:
    from gguf import MODEL_ARCH, get_tensor_name_map

    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(_config_value(config, "num_key_value_heads", heads))
    names = get_tensor_name_map(MODEL_ARCH.LLAMA, int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {k: v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    started = time.monotonic()
    for index, (hf_name, tensor) in enumerate(state.items(), start=1):
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConversionError(f"{hf_name}: no GGUF name for this tensor in llama's map")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = rotary_to_interleaved(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = rotary_to_interleaved(data, kv_heads)
        qtype = _qtype(name, data, quant)
        writer.add_tensor(name, _encoded(data, qtype), raw_dtype=qtype)
        if index % 50 == 0 or index == len(state):
            elapsed = time.monotonic() - started
            eta = elapsed / index * (len(state) - index)
            log.info(
                "gguf %s: %d/%d tensors, %.0f s, about %.0f s left",
                quant, index, len(state), elapsed, eta,
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


def _tokenizer_from_folder(writer: Any, tokenizer: Any, folder: Path, vocab_size: int) -> None:
    import gguf
    from gguf.vocab import BpeVocab, SpecialVocab

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
    writer.add_tokenizer_pre("default")
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
    """Write ``model`` (a plain Llama ``*ForCausalLM``, adapters merged) to ``path``."""
    from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter

    if quant not in QUANTS:
        raise ConversionError(f"quant {quant!r} is not one of {', '.join(QUANTS)}")
    check_architecture(model)
    writer = GGUFWriter(path, MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA])
    writer.add_name(name or path.stem)
    writer.add_file_type(int(_file_type(quant)))
    _hyperparameters(writer, model.config)
    if source_gguf is not None:
        _tokenizer_from_gguf(writer, source_gguf)
    else:
        _tokenizer_from_folder(writer, tokenizer, tokenizer_folder, int(model.config.vocab_size))
    _tensors(writer, model, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
