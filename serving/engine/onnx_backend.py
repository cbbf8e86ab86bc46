"""ONNX Runtime for classification: export at packaging, parity with PyTorch, serve with it.

``export_classifier`` writes ``model.onnx`` beside the safetensors (legacy TorchScript
exporter, opset 17, dynamic batch and sequence axes) and returns the largest absolute
difference between ONNX Runtime's and PyTorch's logits on a parity set of texts of mixed
lengths; over ``MAX_ABS_DIFF`` the file is removed and the version serves with PyTorch.
``OnnxClassifier`` (the core's, :mod:`conveyor.onnx_model`) stands in for the PyTorch model
in ``classify_texts``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from conveyor.model_folder import ArtifactError, LoadedModel, file_sha256
from conveyor.onnx_model import OPSET, OnnxClassifier, export_onnx

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
    path = out_dir / ONNX_FILE
    export_onnx(model, _batch(loaded, PARITY_TEXTS[:2], max_length), path)
    parity = _batch(loaded, PARITY_TEXTS, max_length)
    expected = model(**parity).logits.float()
    got = OnnxClassifier(path)(**parity).logits
    diff = float((got - expected).abs().max())
    report: dict[str, Any] = {"max_abs_diff": diff, "opset": OPSET, "texts": len(PARITY_TEXTS)}
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
