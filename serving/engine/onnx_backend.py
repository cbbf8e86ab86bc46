"""ONNX Runtime for classification: export at packaging, parity with PyTorch, serve with it.

``export_classifier`` writes ``model.onnx`` beside the safetensors (legacy TorchScript
exporter, opset 17, dynamic batch and sequence axes) and returns the largest absolute
difference between ONNX Runtime's and PyTorch's logits on a parity set of texts of mixed
lengths; over ``MAX_ABS_DIFF`` the file is removed and the version serves with PyTorch.
``OnnxClassifier`` stands in for the PyTorch model in ``classify_texts``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from conveyor.model_folder import ArtifactError, LoadedModel, file_sha256

__all__ = [
    "MAX_ABS_DIFF",
    "ONNX_FILE",
    "PARITY_TEXTS",
    "OnnxClassifier",
    "export_classifier",
    "faster_backend",
]

log = logging.getLogger(__name__)
ONNX_FILE = "model.onnx"
REPORT_FILE = "onnx.json"
MAX_ABS_DIFF = 1e-3
PARITY_TEXTS = (
    "hello",
    "set a timer for five minutes",
    "could you please translate 'where is the train station' into german for me",
    "what does serendipity mean",
    "x",
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


def _batch(loaded: LoadedModel, texts: tuple[str, ...], max_length: int) -> dict[str, Any]:
    return dict(
        loaded.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
    )


@torch.inference_mode()
def export_classifier(loaded: LoadedModel, out_dir: Path, max_length: int) -> float:
    """Write ``model.onnx`` (and ``onnx.json``) into ``out_dir``; the max abs logit difference."""
    model = loaded.model.eval()
    sample = _batch(loaded, PARITY_TEXTS[:2], max_length)
    names = [n for n in _INPUTS if n in sample]
    path = out_dir / ONNX_FILE
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    torch.onnx.export(
        model,
        tuple(sample[n] for n in names),
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    parity = _batch(loaded, PARITY_TEXTS, max_length)
    expected = model(**parity).logits.float()
    got = OnnxClassifier(path)(**parity).logits
    diff = float((got - expected).abs().max())
    report: dict[str, Any] = {"max_abs_diff": diff, "opset": 17, "texts": len(PARITY_TEXTS)}
    if diff > MAX_ABS_DIFF:
        path.unlink()
        report["refused"] = f"max abs difference {diff:.3g} over {MAX_ABS_DIFF:g}"
        log.warning("ONNX export refused: %s", report["refused"])
    else:
        report["sha256"] = file_sha256(path)  # checked whenever the export is loaded to serve
    (out_dir / REPORT_FILE).write_text(json.dumps(report))
    return diff


def verify_export(folder: Path) -> None:
    """Raise ArtifactError when ``model.onnx`` is not the file its export recorded."""
    report = folder / REPORT_FILE
    expected = json.loads(report.read_text()).get("sha256") if report.is_file() else None
    if expected and file_sha256(folder / ONNX_FILE) != expected:
        raise ArtifactError(
            f"{folder / ONNX_FILE} does not match the sha256 recorded in {report}:"
            " refusing to load it"
        )


def faster_backend(loaded: LoadedModel, onnx: OnnxClassifier, max_length: int) -> str:
    """``onnx`` or ``torch``, whichever answers the parity set faster here (best of 5)."""
    batch = _batch(loaded, PARITY_TEXTS, max_length)
    timings = {}
    for name, model in (("torch", loaded.model), ("onnx", onnx)):
        best = float("inf")
        with torch.inference_mode():
            for _ in range(5):
                start = time.perf_counter()
                model(**batch)
                best = min(best, time.perf_counter() - start)
        timings[name] = best
    return min(timings, key=lambda name: timings[name])
