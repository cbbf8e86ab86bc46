"""``conveyor-model.json``: what kind of model a folder holds, in which format version.

Folders written before the manifest existed still read: their kind is inferred from the
files (``label_map.json`` means a classifier, a ``*ForCausalLM`` config a causal LM).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.model_folder.errors import ArtifactError, first_line

__all__ = [
    "FORMAT_VERSION",
    "BaseRef",
    "MANIFEST_FILE",
    "Manifest",
    "ModelKind",
    "kind_for_task",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE = "conveyor-model.json"
FORMAT_VERSION = 1


class ModelKind(StrEnum):
    CLASSIFIER = "classifier"
    CAUSAL_LM = "causal-lm"
    LORA_ADAPTER = "lora-adapter"  # a causal LM as LoRA weights on a base named by hash
    GGUF = "gguf"  # a causal LM converted for llama.cpp (``model.gguf``), served by it
    ONNX_INT8 = "onnx-int8"  # a classifier as an int8 ONNX graph, served by ONNX Runtime

    @property
    def task(self) -> str:
        """The recipe task this kind serves (``classification`` or ``causal-lm``)."""
        return "causal-lm" if self.is_generative else "classification"

    @property
    def is_generative(self) -> bool:
        return self not in (ModelKind.CLASSIFIER, ModelKind.ONNX_INT8)


class BaseRef(BaseModel):
    """The base model a LoRA adapter needs: its name and the SHA-256 that identifies it.

    For a built-in base (``smollm2-135m-instruct``) the hash is that of the file it is
    converted from (the GGUF); for a base given as a folder, the folder's content hash.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    sha256: str
    hash_of: str = "folder"  # "folder" (content_sha256) or "source" (the built-in's file)


class Manifest(BaseModel):
    """The folder's self-description. Unknown keys are ignored: a newer writer may add some."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int = FORMAT_VERSION
    kind: ModelKind
    files: dict[str, str] = Field(default_factory=dict)  # name -> SHA-256, the manifest aside
    inferred: bool = False  # True when read from a folder older than the manifest
    base: BaseRef | None = None  # kind lora-adapter only


def kind_for_task(task: str) -> ModelKind:
    if task == "causal-lm":
        return ModelKind.CAUSAL_LM
    if task == "classification":
        return ModelKind.CLASSIFIER
    raise ArtifactError(f"no model-folder kind for task {task!r}")


def write_manifest(
    folder: Path, kind: ModelKind, files: dict[str, str], base: BaseRef | None = None
) -> None:
    """Write the manifest last: ``files`` are the SHA-256 of every other file of the folder."""
    manifest = Manifest(kind=kind, files=files, base=base)
    exclude = {"inferred"} if base is not None else {"inferred", "base"}
    payload = manifest.model_dump(mode="json", exclude=exclude)
    (folder / MANIFEST_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _infer(folder: Path, default_kind: ModelKind | None) -> Manifest:
    if (folder / "label_map.json").is_file():
        return Manifest(kind=ModelKind.CLASSIFIER, format_version=0, inferred=True)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{folder} has no {MANIFEST_FILE} and no readable config.json: {first_line(exc)}"
        ) from exc
    architectures = config.get("architectures") or []
    if any(str(name).endswith("ForCausalLM") for name in architectures):
        return Manifest(kind=ModelKind.CAUSAL_LM, format_version=0, inferred=True)
    if default_kind is not None:
        return Manifest(kind=default_kind, format_version=0, inferred=True)
    raise ArtifactError(
        f"{folder} has no {MANIFEST_FILE}, no label_map.json and no causal-LM config:"
        " cannot tell what kind of model it holds"
    )


def read_manifest(folder: Path | str, *, default_kind: ModelKind | None = None) -> Manifest:
    """The folder's manifest, or one inferred from its files for folders older than it
    (``default_kind`` when the files do not tell, e.g. the version's task)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return _infer(Path(folder), default_kind)
    try:
        manifest = Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ArtifactError(f"{path}: {first_line(exc)}") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format version {manifest.format_version} is newer than this conveyor"
            f" reads ({FORMAT_VERSION}): upgrade conveyor to load it"
        )
    return manifest
