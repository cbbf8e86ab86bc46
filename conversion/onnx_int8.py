"""``quantize_version``: a classifier version written again as an int8 ONNX graph, a new
version of the same deployment, run once by ONNX Runtime before it is registered.

The fp32 graph is the same export packaging makes (:func:`conveyor.onnx_model.export_onnx`);
ONNX Runtime's own quantizer (``onnxruntime.quantization.quantize_dynamic``) stores every
MatMul's weights in int8 and quantizes activations on the fly, per call. Quants (``ONNX_QUANTS``):

- ``int8``: one scale per weight matrix;
- ``int8-per-channel``: one scale per output column, which keeps a matrix whose columns
  differ in range (the classifier head, the feed-forward layers) closer to its fp32 values.

Static (calibrated) quantization is not offered: on MiniLM it needs QDQ graphs whose
activation ranges are fixed per tensor, and the dynamic scheme already quantizes every
MatMul, where the time goes. The parity gate that judges the result against its parent is
the gates' (``gates.evaluate_version`` against the parent, see ``flows.compress``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from conversion.errors import ConversionError
from conveyor.model_folder import (
    ONNX_INT8_FILE,
    ModelKind,
    load_model,
    read_manifest,
    register_model_folder,
    write_onnx_int8_folder,
)
from conveyor.onnx_model import OnnxClassifier, export_onnx
from conveyor.recipe import Recipe
from conveyor.recipe.compress import ONNX_QUANTS
from conveyor.registry import Registry, VersionRecord, VersionStatus
from conveyor.settings import Settings

__all__ = ["ONNX_QUANTS", "quantize_onnx", "quantize_version"]

log = logging.getLogger(__name__)
METHOD = "onnx-int8"
_TRACE_TEXTS = ("set a timer for five minutes", "what does serendipity mean in english")


def _check_quantizable(record: VersionRecord) -> None:
    if record.task != "classification":
        raise ConversionError(
            f"{record.version} is a {record.task} version: only classification versions "
            "quantize to int8 ONNX (a language model converts to GGUF: --to gguf)"
        )
    if record.artifact_uri is None:
        raise ConversionError(f"{record.version} has no model folder recorded")
    kind = read_manifest(record.artifact_uri).kind
    if kind is not ModelKind.CLASSIFIER:
        raise ConversionError(f"{record.version} is already {kind}: quantize its parent")


def quantize_onnx(model: Any, sample: dict[str, Any], path: Path, *, quant: str) -> None:
    """Export ``model`` (traced on ``sample``) and write its int8 graph to ``path``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if quant not in ONNX_QUANTS:
        raise ConversionError(f"quant {quant!r} is not one of {', '.join(ONNX_QUANTS)}")
    with tempfile.TemporaryDirectory(prefix="conveyor-onnx-") as scratch:
        fp32 = Path(scratch) / "model.fp32.onnx"
        export_onnx(model, sample, fp32)
        quantize_dynamic(
            fp32, path, weight_type=QuantType.QInt8, per_channel=quant == "int8-per-channel"
        )


def _runs_in_onnxruntime(path: Path, sample: dict[str, Any], labels: int) -> None:
    """Load the written graph and classify the trace texts, or ConversionError."""
    try:
        logits = OnnxClassifier(path, threads=1)(**sample).logits
    except Exception as exc:
        raise ConversionError(f"ONNX Runtime cannot run the int8 graph: {exc}") from exc
    if tuple(logits.shape) != (len(_TRACE_TEXTS), labels):
        raise ConversionError(f"the int8 graph gives logits of shape {tuple(logits.shape)}")


def quantize_version(
    registry: Registry, settings: Settings, ref: str, *, quant: str = "int8-per-channel"
) -> VersionRecord:
    """Write classifier ``ref`` as an int8 ONNX graph and register the new version (status
    ``trained``: it still has to pass its parity gate before it may serve)."""
    if quant not in ONNX_QUANTS:
        raise ConversionError(f"--quant {quant!r}: choose one of {', '.join(ONNX_QUANTS)}")
    record = registry.resolve(ref)
    _check_quantizable(record)
    recipe = Recipe.model_validate(record.recipe)  # stored, resolved: its data may be gone
    started = time.monotonic()
    loaded = load_model(
        record.artifact_uri, "classification", expected_sha256=record.content_sha256
    )
    assert loaded.label_names is not None
    sample = dict(
        loaded.tokenizer(
            list(_TRACE_TEXTS),
            padding=True,
            truncation=True,
            max_length=recipe.model.max_length,
            return_tensors="pt",
        )
    )
    log.info("quantizing %s to ONNX %s", record.version, quant)
    lineage = {
        "parent": record.version,
        "parent_sha256": record.content_sha256,
        "method": METHOD,
        "settings": {"quant": quant},
        "converter": f"onnxruntime {_onnxruntime_version()} quantize_dynamic",
    }
    metrics = {"converted_from": record.version, "method": METHOD, "quant": quant}
    folder = write_onnx_int8_folder(
        settings.models_dir,
        record.deployment,
        partial(quantize_onnx, loaded.model, sample, quant=quant),
        loaded.tokenizer,
        loaded.model.config,
        label_names=loaded.label_names,
        metrics=metrics,
        recipe=record.recipe,
        lineage=lineage,
    )
    graph = folder / ONNX_INT8_FILE
    _runs_in_onnxruntime(graph, sample, len(loaded.label_names))
    seconds = round(time.monotonic() - started, 1)
    size_mb = round(graph.stat().st_size / 1e6, 1)
    reason = f"quantized from {record.version} to ONNX {quant} in {seconds} s ({size_mb} MB)"
    new = register_model_folder(
        registry,
        folder,
        recipe=recipe,
        metrics=metrics | {"onnx_mb": size_mb, "convert_s": seconds},
        data_fingerprint=record.data_fingerprint,
        reason=reason,
        status=VersionStatus.TRAINED,
    )
    log.info("%s: %s", new.version, reason)
    return new


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
