"""Write a model folder: everything needed to serve and to trace a trained model.

``<models_dir>/<deployment>/<hash>/`` holds safetensors weights, config, tokenizer,
``label_map.json`` (classifiers), ``metrics.json``, ``recipe.yaml``, ``lineage.json`` (data
fingerprint, base model) and, written last, ``conveyor-model.json`` (kind, format version,
the SHA-256 of every other file). The name is a hash of the weights and config, so a folder
never changes once written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conveyor.model_folder.hashing import file_hashes
from conveyor.model_folder.loading import GGUF_FILE, ONNX_INT8_FILE
from conveyor.model_folder.manifest import BaseRef, ModelKind, write_manifest

__all__ = ["MODEL_FILES", "write_gguf_folder", "write_model_folder", "write_onnx_int8_folder"]

_ADAPTER = ("adapter_config.json", "adapter_model.safetensors")
MODEL_FILES = (
    "model.safetensors",
    "config.json",
    "metrics.json",
    "recipe.yaml",
    "lineage.json",
    "conveyor-model.json",
)


def _folder_name(folder: Path) -> str:
    digest = hashlib.sha256()
    names = (
        "config.json", "model.safetensors", "label_map.json", *_ADAPTER, "base.json", GGUF_FILE,
        ONNX_INT8_FILE,
    )  # fmt: skip
    for name in names:
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _dump(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def _staged(parent: Path, fill: Callable[[Path], ModelKind], base: BaseRef | None = None) -> Path:
    """``fill(staging)`` writes the files and says the kind; the manifest is written last and
    the folder renamed to its hash (atomic on one disk), or removed when anything fails."""
    staging = parent / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        kind = fill(staging)
        write_manifest(staging, kind, file_hashes(staging), base)
        final = parent / _folder_name(staging)
        if final.exists():
            shutil.rmtree(staging)
        else:
            staging.rename(final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _common_files(
    staging: Path, metrics: dict[str, Any], recipe: dict[str, Any], lineage: dict[str, Any]
) -> None:
    _dump(staging / "metrics.json", metrics)
    _dump(staging / "lineage.json", lineage)
    (staging / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def write_model_folder(
    models_dir: Path,
    deployment: str,
    model: Any,
    tokenizer: Any,
    *,
    label_names: tuple[str, ...] | None,
    metrics: dict[str, Any],
    recipe: dict[str, Any],
    lineage: dict[str, Any],
    state_dict: dict[str, Any] | None = None,
    base: BaseRef | None = None,
) -> Path:
    """Write into a staging folder, then rename it to its hash (atomic on one disk).

    ``label_names`` makes it a classifier; without them it is a causal LM; with ``base``
    (``model`` being a peft model) it is a LoRA adapter on that base: adapter weights only.
    """

    def fill(staging: Path) -> ModelKind:
        if base is not None:
            model.save_pretrained(str(staging), safe_serialization=True)
            _dump(staging / "base.json", base.model_dump(mode="json"))
        else:
            model.save_pretrained(staging, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if label_names is not None:
            _dump(staging / "label_map.json", {name: i for i, name in enumerate(label_names)})
        _common_files(staging, metrics, recipe, lineage)
        if base is not None:
            return ModelKind.LORA_ADAPTER
        return ModelKind.CLASSIFIER if label_names is not None else ModelKind.CAUSAL_LM

    return _staged(models_dir / deployment, fill, base)


def write_gguf_folder(
    models_dir: Path,
    deployment: str,
    write_model: Callable[[Path], None],
    tokenizer: Any,
    *,
    metrics: dict[str, Any],
    recipe: dict[str, Any],
    lineage: dict[str, Any],
) -> Path:
    """A GGUF version's folder: ``write_model(path)`` writes ``model.gguf``; the tokenizer
    (chat template, token counts), metrics, recipe and lineage beside it; staged and renamed
    to its hash like every model folder."""

    def fill(staging: Path) -> ModelKind:
        write_model(staging / "model.gguf")
        tokenizer.save_pretrained(staging)
        _common_files(staging, metrics, recipe, lineage)
        return ModelKind.GGUF

    return _staged(models_dir / deployment, fill)


def write_onnx_int8_folder(
    models_dir: Path,
    deployment: str,
    write_model: Callable[[Path], None],
    tokenizer: Any,
    config: Any,
    *,
    label_names: tuple[str, ...],
    metrics: dict[str, Any],
    recipe: dict[str, Any],
    lineage: dict[str, Any],
) -> Path:
    """An int8 classifier's folder: ``write_model(path)`` writes its graph (``ONNX_INT8_FILE``); the
    config (label count), tokenizer, label map, metrics, recipe and lineage beside it."""

    def fill(staging: Path) -> ModelKind:
        write_model(staging / ONNX_INT8_FILE)
        config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _dump(staging / "label_map.json", {name: i for i, name in enumerate(label_names)})
        _common_files(staging, metrics, recipe, lineage)
        return ModelKind.ONNX_INT8

    return _staged(models_dir / deployment, fill)
