"""Conversion of trained versions into serving formats: a causal LM into llama.cpp's GGUF, a
classifier into an int8 ONNX graph (:func:`quantize_version`).

:func:`convert_version` writes a new version of the same deployment from a trained one (a
LoRA adapter merged into its base first), tensors mapped and quantized with ``gguf``'s own
name map and quantizers, the tokenizer and chat template carried over, content-hashed and
registered with its lineage (parent, method, settings). The parity gate that judges it
against its parent is the gates' (``gates.evaluate_version`` against the parent).
"""

from conversion.errors import ConversionError
from conversion.gguf_file import QUANTS, write_gguf
from conversion.onnx_int8 import ONNX_QUANTS, quantize_version
from conversion.version import convert_version

__all__ = [
    "ONNX_QUANTS",
    "QUANTS",
    "ConversionError",
    "convert_version",
    "quantize_version",
    "write_gguf",
]
