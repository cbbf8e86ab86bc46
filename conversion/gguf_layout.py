"""Where one architecture's hyperparameters and weights go in a GGUF, as llama.cpp's own
converter (``convert_hf_to_gguf.py``) lays them out: the one home of that fact, read by the
converter (:func:`conversion.write_gguf`) and by the tests' tiny GGUF bases.

Names come from ``gguf.get_tensor_name_map`` for the architecture; what ``gguf`` cannot say
is said here, per architecture (:data:`LAYOUTS`):

- Llama: the query and key rows go from Hugging Face's rotary layout (each head's two
  halves) to llama.cpp's interleaved pairs; the rotary dimension count is written.
- Qwen2: rotary rows stay as they are (llama.cpp rotates Qwen2 in the halves layout); the
  query, key and value biases are ordinary tensors.
- Gemma 3 (text): every ``*norm.weight`` is stored as ``1 + weight`` (llama.cpp's norm
  multiplies by the stored value, Gemma's by one plus it); key and value lengths and the
  sliding window are written. llama.cpp fixes what the file cannot say (attention scaled by
  ``1/sqrt(head_dim)``, local layers' rotary base 10000, five local layers then one global),
  so a model that differs is refused rather than written to compute something else.

A tied output matrix is not written twice (llama.cpp reuses the token embedding). Tensors
come out as float32 arrays; the caller picks their storage type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from conversion.errors import ConversionError

__all__ = [
    "LAYOUTS",
    "GgufLayout",
    "gguf_tensor_count",
    "gguf_tensors",
    "layout_for",
    "write_hyperparameters",
]

_GEMMA_PATTERN = 6  # llama.cpp's Gemma 3: five sliding-window layers, then one global
_GEMMA_LOCAL_ROPE = 10000.0  # llama.cpp's Gemma 3 local layers' rotary base, not in the file


@dataclass(frozen=True)
class GgufLayout:
    """What llama.cpp expects of one architecture beyond ``gguf``'s tensor-name map."""

    arch: str  # ``general.architecture``, the GGUF name
    interleave_qk: bool  # query/key rows reordered for llama.cpp's rotary
    norm_offset: float  # added to every ``*norm.weight``
    head_lengths: bool  # key/value lengths and sliding window written (Gemma)


# Keyed by Hugging Face's ``config.model_type``.
LAYOUTS: dict[str, GgufLayout] = {
    "llama": GgufLayout("llama", interleave_qk=True, norm_offset=0.0, head_lengths=False),
    "qwen2": GgufLayout("qwen2", interleave_qk=False, norm_offset=0.0, head_lengths=False),
    "gemma3_text": GgufLayout("gemma3", interleave_qk=False, norm_offset=1.0, head_lengths=True),
}


def _value(config: Any, name: str, default: Any = None) -> Any:
    value = getattr(config, name, None)
    return default if value is None else value


def _rope_theta(config: Any, layer_type: str = "full_attention") -> float | None:
    """The rotary base; Gemma 3 keeps one per layer type in ``rope_parameters``."""
    if getattr(config, "rope_theta", None) is not None:
        return float(config.rope_theta)
    rope = getattr(config, "rope_parameters", None) or {}
    rope = rope.get(layer_type, rope)
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return None if theta is None else float(theta)


def _head_dim(config: Any) -> int:
    return int(_value(config, "head_dim", config.hidden_size // config.num_attention_heads))


def _check_gemma3(config: Any) -> None:
    """ConversionError when llama.cpp would compute a different Gemma 3 than ``config``."""
    problems = []
    head_dim = _head_dim(config)
    scalar = _value(config, "query_pre_attn_scalar", head_dim)
    if float(scalar) != float(head_dim):
        problems.append(f"query_pre_attn_scalar {scalar} is not head_dim {head_dim}")
    local = _rope_theta(config, "sliding_attention")
    if local is not None and local != _GEMMA_LOCAL_ROPE:
        problems.append(f"the sliding layers' rope_theta {local} is not {_GEMMA_LOCAL_ROPE:g}")
    types = list(_value(config, "layer_types", []))
    expected = [
        "full_attention" if (i + 1) % _GEMMA_PATTERN == 0 else "sliding_attention"
        for i in range(len(types))
    ]
    if types != expected:
        problems.append(f"layer_types are not {_GEMMA_PATTERN - 1} sliding then 1 full")
    if problems:
        raise ConversionError(
            "cannot write this Gemma 3 as GGUF: llama.cpp fixes what the file cannot say, and "
            + "; ".join(problems)
        )


def layout_for(model: Any) -> GgufLayout:
    """The layout of ``model``'s architecture; ConversionError naming it and the supported."""
    model_type = getattr(model.config, "model_type", None)
    layout = LAYOUTS.get(str(model_type))
    if layout is None:
        raise ConversionError(
            f"cannot convert a {model_type!r} model ({type(model).__name__}) to GGUF: "
            f"supported architectures are {', '.join(LAYOUTS)}"
        )
    if layout.arch == "gemma3":
        _check_gemma3(model.config)
    return layout


def write_hyperparameters(writer: Any, config: Any, layout: GgufLayout) -> None:
    """The ``<arch>.*`` fields llama.cpp reads to build the model."""
    heads = int(config.num_attention_heads)
    head_dim = _head_dim(config)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(_value(config, "num_key_value_heads", heads)))
    writer.add_layer_norm_rms_eps(float(_value(config, "rms_norm_eps", 1e-5)))
    writer.add_rope_freq_base(_rope_theta(config) or 10000.0)
    writer.add_vocab_size(int(config.vocab_size))
    if layout.interleave_qk:
        writer.add_rope_dimension_count(head_dim)
    if layout.head_lengths:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(int(config.sliding_window))


def rotary_to_interleaved(weight: npt.NDArray[Any], heads: int) -> npt.NDArray[Any]:
    """A q/k projection's rows from Hugging Face's rotary order (per head: the first half of
    the dimensions, then the second) to the interleaved pairs llama.cpp rotates."""
    half = weight.shape[0] // heads // 2
    by_head = weight.reshape(heads, 2, half, *weight.shape[1:])
    return by_head.swapaxes(1, 2).reshape(weight.shape)


def _arranged(hf_name: str, data: npt.NDArray[Any], config: Any, layout: GgufLayout) -> Any:
    heads = int(config.num_attention_heads)
    if layout.interleave_qk and hf_name.endswith("q_proj.weight"):
        return rotary_to_interleaved(data, heads)
    if layout.interleave_qk and hf_name.endswith("k_proj.weight"):
        return rotary_to_interleaved(data, int(_value(config, "num_key_value_heads", heads)))
    if layout.norm_offset and hf_name.endswith("norm.weight"):
        return data + np.float32(layout.norm_offset)
    return data


def _written(model: Any) -> Iterator[tuple[str, Any]]:
    """The state dict's tensors a GGUF holds: a tied output matrix is the token embedding."""
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if not (tied and hf_name == "lm_head.weight"):
            yield hf_name, tensor


def gguf_tensor_count(model: Any) -> int:
    """How many tensors :func:`gguf_tensors` yields for ``model``."""
    return sum(1 for _ in _written(model))


def gguf_tensors(model: Any, layout: GgufLayout) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    """``(GGUF name, float32 array)`` for each weight of ``model``, laid out for llama.cpp,
    one at a time: the caller stores each (quantized, say) before the next is made."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    config = model.config
    code = next(k for k, v in MODEL_ARCH_NAMES.items() if v == layout.arch)
    names = get_tensor_name_map(code, int(config.num_hidden_layers))
    for hf_name, tensor in _written(model):
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConversionError(f"{hf_name}: no GGUF name for this tensor in {layout.arch}'s map")
        data = tensor.detach().float().cpu().numpy()
        yield name, _arranged(hf_name, data, config, layout)
