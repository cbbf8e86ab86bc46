"""Load a model folder for inference: checked against its registered hash, then read.

Any failure becomes :class:`ArtifactError` with a one-line reason, so a broken or altered
folder is judged "artifact unloadable" (gates) or never takes traffic (serving).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.model_folder.adapter import load_adapter_model
from conveyor.model_folder.errors import ArtifactError, first_line
from conveyor.model_folder.hashing import verify_content
from conveyor.model_folder.manifest import (
    BaseRef,
    Manifest,
    ModelKind,
    kind_for_task,
    read_manifest,
)
from conveyor.model_folder.weights import load_pretrained_in_memory

__all__ = [
    "GGUF_FILE",
    "GGUF_SLOTS",
    "ONNX_INT8_FILE",
    "WEIGHT_FILES",
    "LoadedModel",
    "load_model",
]

GGUF_FILE = "model.gguf"
ONNX_INT8_FILE = "model.int8.onnx"  # the weights of an int8 version (content, unlike model.onnx)
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", GGUF_FILE, ONNX_INT8_FILE)
GGUF_SLOTS = 8  # sequences llama.cpp decodes together (the torch engine's batch, too)


@dataclass(frozen=True)
class LoadedModel:
    folder: Path
    task: str
    model: Any
    tokenizer: Any
    label_names: tuple[str, ...] | None
    kind: ModelKind = ModelKind.CLASSIFIER
    base: BaseRef | None = None  # the base under a LoRA adapter


def _label_names(folder: Path, config: Any) -> tuple[str, ...]:
    path = folder / "label_map.json"
    if not path.is_file():
        raise ArtifactError(f"{folder} has no label_map.json")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: {first_line(exc)}") from exc
    names = tuple(sorted(mapping, key=lambda name: mapping[name]))
    if len(names) != config.num_labels:
        raise ArtifactError(
            f"{path} names {len(names)} labels but the model has {config.num_labels} outputs"
        )
    return names


def _checked_folder(folder: Path | str | None, expected_sha256: str | None) -> Path:
    if folder is None:
        raise ArtifactError("the version has no artifact recorded")
    path = Path(folder)
    if not path.is_dir():
        raise ArtifactError(f"artifact missing: {path} does not exist")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ArtifactError(f"artifact incomplete: no model.safetensors in {path}")
    if expected_sha256:
        verify_content(path, expected_sha256)
    return path


def _manifest_for(path: Path, task: str | None) -> Manifest:
    manifest = read_manifest(path, default_kind=kind_for_task(task) if task else None)
    if task is not None and manifest.kind.task != task:
        raise ArtifactError(
            f"{path} holds a {manifest.kind} model, but the version's task is {task}"
        )
    return manifest


def load_model(
    folder: Path | str | None,
    task: str | None = None,
    *,
    expected_sha256: str | None = None,
    cache_dir: Path | None = None,
    gguf_slots: int = GGUF_SLOTS,
) -> LoadedModel:
    """Load for inference (eval mode, CPU, local files only).

    A GGUF version loads into llama.cpp with ``gguf_slots`` sequences decoding together.

    With ``expected_sha256`` (the hash registered with the version) the folder is checked
    first, so a folder changed by a single bit is refused. ``task``, when given, must match
    the kind the folder says it holds. A LoRA adapter is loaded on its base, found in
    ``cache_dir`` (default: the settings' cache) for a built-in base.
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from conveyor.mean_pool import register_mean_pool

    register_mean_pool()  # classifiers trained on multilingual-e5-small
    path = _checked_folder(folder, expected_sha256)
    manifest = _manifest_for(path, task)
    kind = manifest.kind
    if kind is ModelKind.GGUF:
        return _load_gguf(path, gguf_slots)
    if kind is ModelKind.ONNX_INT8:
        return _load_onnx(path)
    causal = kind is ModelKind.CAUSAL_LM
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    if kind is ModelKind.LORA_ADAPTER:
        model = load_adapter_model(path, manifest.base, cache_dir or _default_cache_dir())
    try:
        if kind is not ModelKind.LORA_ADAPTER:
            model = load_pretrained_in_memory(auto, path)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers and safetensors raise many types for a bad folder
        raise ArtifactError(f"cannot load {path}: {first_line(exc)}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    names = _label_names(path, model.config) if kind is ModelKind.CLASSIFIER else None
    return LoadedModel(path, kind.task, model, tokenizer, names, kind, manifest.base)


def _load_gguf(path: Path, slots: int) -> LoadedModel:
    """A GGUF version in llama.cpp (its engine threads: torch's, as set for this process),
    with the Hugging Face tokenizer it carries for chat templates and token counts."""
    import torch
    from transformers import AutoTokenizer

    from conveyor.llamacpp import SLOT_CONTEXT, LlamaCppModel, gguf_context_length

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        trained = gguf_context_length(path / GGUF_FILE) or SLOT_CONTEXT
    except Exception as exc:  # a tokenizer or GGUF header that does not read
        raise ArtifactError(f"cannot load {path}: {first_line(exc)}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = LlamaCppModel(
        path / GGUF_FILE,
        context=min(trained, SLOT_CONTEXT),
        slots=slots,
        threads=torch.get_num_threads(),
    )
    return LoadedModel(path, "causal-lm", model, tokenizer, None, ModelKind.GGUF)


def _load_onnx(path: Path) -> LoadedModel:
    """An int8 classifier in ONNX Runtime (its threads: torch's, as set for this process),
    with its tokenizer and label map; its config says how many labels it has."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from conveyor.onnx_model import OnnxClassifier

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model = OnnxClassifier(path / ONNX_INT8_FILE, threads=torch.get_num_threads())
    except Exception as exc:  # a tokenizer, config or graph that does not read
        raise ArtifactError(f"cannot load {path}: {first_line(exc)}") from exc
    names = _label_names(path, config)
    return LoadedModel(path, "classification", model, tokenizer, names, ModelKind.ONNX_INT8)


def _default_cache_dir() -> Path:
    from conveyor.settings import Settings

    return Settings().cache_dir
