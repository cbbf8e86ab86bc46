"""Loading one version for a worker: check, load, warm and smoke-check, or refuse.

A version's folder is checked against the SHA-256 registered with it before it loads; a
generative version gets a decode engine (a LoRA version joins its base's engine in an
:class:`~serving.engine.adapters.AdapterPool`); a classifier may run on ONNX Runtime. What
comes back is a :class:`Served`, which the controller routes to; :func:`release_version`
gives back what it holds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from conveyor.model_folder import ArtifactError, LoadedModel, ModelKind, bento_model_tag
from conveyor.registry import VersionRecord
from conveyor.serving_spec import CaptureSpec, serving_spec_of
from serving.engine.adapters import AdapterPool, is_adapter_folder
from serving.engine.decoding import DecodeEngine
from serving.engine.inference import SmokeError, load_for_serving, smoke_check
from serving.engine.limits import context_length
from serving.engine.llamacpp_engine import LlamaCppEngine

__all__ = [
    "ENGINE_MAX_BATCH",
    "GGUF_BACKEND",
    "ONNX_INT8_BACKEND",
    "Served",
    "load_failure",
    "load_version",
    "model_folder",
    "release_version",
    "retry_delay",
]

FAILURE_RETRY_SECONDS = 5.0  # a refused version is tried again after 5, 10, 20 ... s
FAILURE_RETRY_MAX_SECONDS = 300.0
ENGINE_MAX_BATCH = 8  # requests decoding together in one generative engine
GGUF_BACKEND = "llama.cpp"  # the backend a GGUF version is served (and gated) with
ONNX_INT8_BACKEND = "onnx-int8"  # an int8 classifier version: ONNX Runtime, always


@dataclass(frozen=True)
class Served:
    """A loaded, smoke-checked version and what its serving spec allows per request."""

    version: str
    task: str
    loaded: LoadedModel
    max_length: int
    max_texts: int
    max_chars: int
    max_new_tokens: int
    loaded_at: datetime
    load_seconds: float
    backend: str = "torch"
    max_batch_size: int = 32  # texts per forward pass; 1 when the version's batching is off
    engine: DecodeEngine | LlamaCppEngine | None = None  # a generative version's engine
    adapter: str | None = None  # a LoRA version: its adapter's name in the engine's model
    base: str | None = None  # a LoRA version: the SHA-256 of its shared base
    capture: CaptureSpec = CaptureSpec()  # what the worker records of this version's traffic

    @property
    def context(self) -> int | None:
        """A generative version: the tokens one request may hold (prompt and completion),
        computed once by its engine as the version loaded."""
        return self.engine.context if self.engine is not None else None


def retry_delay(attempts: int) -> float:
    """Seconds to wait before loading a version again after ``attempts`` failed loads."""
    if attempts <= 0:
        return 0.0
    return float(min(FAILURE_RETRY_MAX_SECONDS, FAILURE_RETRY_SECONDS * 2 ** (attempts - 1)))


def load_failure(exc: BaseException) -> str:
    """One line saying why a version did not load: our own errors say it, others name their
    class (an onnxruntime or pydantic error's text alone rarely does)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ArtifactError | SmokeError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def model_folder(record: VersionRecord) -> Path | None:
    """The BentoML model-store copy when the version is packaged, else the training folder."""
    try:
        import bentoml

        tag = bento_model_tag(record.version, record.artifact_uri, record.content_sha256)
        return Path(bentoml.models.get(tag).path)
    except Exception:  # not packaged (or no store): the registry's folder
        return Path(record.artifact_uri) if record.artifact_uri else None


def load_version(record: VersionRecord, pool: AdapterPool | None = None) -> Served:
    """Load, warm and smoke-check a version: ArtifactError or SmokeError when it must not serve.

    The folder is checked against the SHA-256 registered with the version before it loads.
    A generative version gets a decode engine; a LoRA version joins its base's engine in
    ``pool`` (a private pool without one). :func:`release_version` gives it back.
    """
    start = time.perf_counter()
    spec = serving_spec_of(record)
    folder = model_folder(record)
    engine: DecodeEngine | LlamaCppEngine | None = None
    adapter = base = None
    if record.task == "causal-lm" and is_adapter_folder(folder):
        pool = pool or AdapterPool(max_batch=ENGINE_MAX_BATCH if spec.batching else 1)
        loaded, shared, adapter = pool.load(
            folder, record.version, expected_sha256=record.content_sha256
        )
        engine, base = shared.engine, shared.key
    else:
        slots = ENGINE_MAX_BATCH if spec.batching else 1  # llama.cpp's parallel sequences
        loaded = load_for_serving(
            folder, record.task, expected_sha256=record.content_sha256, slots=slots
        )
    max_length = min(
        spec.max_length, context_length(loaded.model, loaded.tokenizer) or spec.max_length
    )
    backend = "torch"
    if loaded.kind is ModelKind.ONNX_INT8:
        backend = ONNX_INT8_BACKEND  # the version is the graph: no PyTorch to choose
    elif record.task == "classification" and spec.backend != "torch":
        loaded, backend = _with_onnx(loaded, folder, spec.backend, max_length)
    if loaded.kind is ModelKind.GGUF:
        engine, backend = (
            LlamaCppEngine(loaded.model, loaded.tokenizer, name=record.version),
            GGUF_BACKEND,
        )
    elif record.task == "causal-lm" and engine is None:
        engine = DecodeEngine(
            loaded.model,
            loaded.tokenizer,
            max_batch=ENGINE_MAX_BATCH if spec.batching else 1,
            name=record.version,
        )
    served = Served(
        version=record.version,
        task=record.task,
        loaded=loaded,
        max_length=max_length,  # longer texts are truncated to what the model embeds
        max_texts=spec.max_texts_per_request,
        max_chars=spec.max_text_chars,
        max_new_tokens=spec.max_new_tokens,
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        backend=backend,
        max_batch_size=spec.max_batch_size if spec.batching else 1,
        engine=engine,
        adapter=adapter,
        base=base,
        capture=spec.capture,
    )
    try:
        smoke_check(loaded, max_length, engine=engine, adapter=adapter)  # also the warm-up
    except BaseException:
        release_version(served, pool)
        raise
    finally:
        if adapter is not None and pool is not None:  # checked: now it may be evicted
            pool.unlease(adapter)
    return dataclasses.replace(served, load_seconds=time.perf_counter() - start)


def release_version(served: Served, pool: AdapterPool | None = None) -> None:
    """Give back what a version holds: its adapter on a shared base, or its own engine.
    Requests already running on it finish first."""
    if served.adapter is not None and served.base is not None and pool is not None:
        if served.base in pool.bases():
            pool.release(served.base, served.adapter)
            return
    if served.engine is not None:
        served.engine.retire()


def _with_onnx(
    loaded: LoadedModel, folder: Path | None, wanted: str, max_length: int
) -> tuple[LoadedModel, str]:
    """ONNX Runtime in place of PyTorch: always for ``onnx``, when faster here for ``auto``."""
    from serving.engine.onnx_backend import ONNX_FILE, OnnxClassifier, faster_backend, verify_export

    path = folder / ONNX_FILE if folder else None
    if path is None or not path.is_file():
        if wanted == "onnx":
            raise ArtifactError(f"no {ONNX_FILE} for this version: package it (conveyor package)")
        return loaded, "torch"
    verify_export(path.parent)
    onnx = OnnxClassifier(path, threads=torch.get_num_threads())
    if wanted == "auto" and faster_backend(loaded, onnx, max_length) != "onnx":
        return loaded, "torch"
    return dataclasses.replace(loaded, model=onnx), "onnx"
