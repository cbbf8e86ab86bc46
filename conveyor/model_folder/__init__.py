"""The model-folder format: one writer, one reader, its content hash, its registration.

Training writes folders, gates and serving load them, and every version is registered
through :func:`register_model_folder`. A folder says which kind of model it holds in
``conveyor-model.json``; folders older than that file still load (the kind is inferred).
"""

from conveyor.model_folder.adapter import ADAPTER_FILES, base_ref_for, resolve_base_ref
from conveyor.model_folder.errors import ArtifactError
from conveyor.model_folder.hashing import NOT_CONTENT, content_sha256, file_sha256, verify_content
from conveyor.model_folder.loading import (
    GGUF_FILE,
    ONNX_INT8_FILE,
    WEIGHT_FILES,
    LoadedModel,
    load_model,
)
from conveyor.model_folder.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    BaseRef,
    Manifest,
    ModelKind,
    read_manifest,
)
from conveyor.model_folder.register import register_model_folder
from conveyor.model_folder.tags import bento_model_tag
from conveyor.model_folder.weights import load_pretrained_in_memory
from conveyor.model_folder.writer import (
    MODEL_FILES,
    write_gguf_folder,
    write_model_folder,
    write_onnx_int8_folder,
)

__all__ = [
    "ADAPTER_FILES",
    "FORMAT_VERSION",
    "GGUF_FILE",
    "MANIFEST_FILE",
    "MODEL_FILES",
    "NOT_CONTENT",
    "ONNX_INT8_FILE",
    "WEIGHT_FILES",
    "ArtifactError",
    "BaseRef",
    "LoadedModel",
    "Manifest",
    "ModelKind",
    "base_ref_for",
    "bento_model_tag",
    "content_sha256",
    "file_sha256",
    "load_model",
    "load_pretrained_in_memory",
    "read_manifest",
    "register_model_folder",
    "resolve_base_ref",
    "verify_content",
    "write_gguf_folder",
    "write_model_folder",
    "write_onnx_int8_folder",
]
