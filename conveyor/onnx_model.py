"""ONNX Runtime for classifiers: the graph export and the runtime both stages share.

:func:`export_onnx` writes a Hugging Face sequence classifier as an ONNX graph (legacy
TorchScript exporter, opset 17, dynamic batch and sequence axes); :class:`OnnxClassifier`
runs one and is called like the PyTorch model (``model(**batch).logits``). Packaging exports
every classifier beside its weights (``serving.engine.onnx_backend``); an int8 version
(``conversion.onnx_int8``) is such a graph with its matrices quantized, loaded by the core's
model-folder reader, so the gates judge it through the runtime it will serve with.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

__all__ = ["INPUT_NAMES", "OPSET", "OnnxClassifier", "export_onnx"]

OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class OnnxClassifier:
    """Callable like a Hugging Face classifier: ``model(**batch).logits`` (a torch tensor)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, **batch: Any) -> Any:
        feed = {name: batch[name].numpy() for name in self.inputs if name in batch}
        (logits,) = self.session.run(["logits"], feed)
        return SimpleNamespace(logits=torch.from_numpy(logits))

    def eval(self) -> OnnxClassifier:
        """Already inference-only (called where a torch model would be put in eval mode)."""
        return self


@torch.inference_mode()
def export_onnx(model: Any, sample: dict[str, Any], path: Path) -> None:
    """Write ``model`` (a torch sequence classifier) to ``path``, traced on ``sample`` (a
    tokenized batch of at least two texts, so no axis is traced as a constant)."""
    names = [n for n in INPUT_NAMES if n in sample]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    torch.onnx.export(
        model.eval(),
        tuple(sample[n] for n in names),
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
    )
