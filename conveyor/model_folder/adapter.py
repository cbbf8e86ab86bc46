"""LoRA adapter folders: the base they need, named by hash, found and checked again at load.

A ``lora-adapter`` folder holds peft's ``adapter_config.json`` and
``adapter_model.safetensors`` (megabytes), the tokenizer and the usual metrics, recipe and
lineage; its manifest names the base by :class:`BaseRef`. Loading resolves the base (a
built-in is converted into the cache if it is not there yet), refuses a base whose hash
is not the one the adapter was trained on, and puts the adapter on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.model_folder.errors import ArtifactError, first_line
from conveyor.model_folder.hashing import content_sha256, verify_content
from conveyor.model_folder.manifest import BaseRef
from conveyor.model_folder.weights import load_pretrained_in_memory
from conveyor.pretrained import BaseModelUnavailable, resolve_pretrained

__all__ = ["ADAPTER_FILES", "base_ref_for", "load_adapter_model", "resolve_base_ref"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def base_ref_for(base: str, cache_dir: Path) -> tuple[BaseRef, Path]:
    """How an adapter trained on ``base`` (a recipe's ``model.base``) names it, and its folder."""
    converted = resolve_pretrained(base, cache_dir)
    if converted is not None:
        return BaseRef(name=base, sha256=converted.source_sha256, hash_of="source"), converted.path
    folder = Path(base)
    if not (folder.is_absolute() and (folder / "config.json").is_file()):
        raise ArtifactError(
            f"model.base {base}: a LoRA adapter needs a built-in base or a local model folder"
        )
    return BaseRef(name=str(folder), sha256=content_sha256(folder), hash_of="folder"), folder


def resolve_base_ref(ref: BaseRef, cache_dir: Path) -> Path:
    """The folder of the base ``ref`` names, checked to be the very base the adapter needs."""
    if ref.hash_of == "source":
        try:
            converted = resolve_pretrained(ref.name, cache_dir)
        except BaseModelUnavailable as exc:
            raise ArtifactError(f"the adapter's base is unavailable: {exc}") from exc
        if converted is None:
            raise ArtifactError(f"the adapter's base {ref.name!r} is not a built-in base")
        if converted.source_sha256 != ref.sha256:
            raise ArtifactError(
                f"the adapter was trained on {ref.name} sha256 {ref.sha256[:16]}..., but the "
                f"installed one is {converted.source_sha256[:16]}...: refusing to load it"
            )
        return converted.path
    folder = Path(ref.name)
    if not folder.is_dir():
        raise ArtifactError(f"the adapter's base folder {folder} does not exist")
    verify_content(folder, ref.sha256)
    return folder


def load_adapter_model(folder: Path, ref: BaseRef | None, cache_dir: Path) -> Any:
    """The base model with the adapter in ``folder`` on top, for inference."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if ref is None:
        raise ArtifactError(f"{folder}: a lora-adapter manifest must name its base")
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"artifact incomplete: no {', '.join(missing)} in {folder}")
    base_folder = resolve_base_ref(ref, cache_dir)
    try:
        base = load_pretrained_in_memory(AutoModelForCausalLM, base_folder)
        return PeftModel.from_pretrained(base, str(folder), is_trainable=False)
    except Exception as exc:  # peft and transformers raise many types for a bad folder
        raise ArtifactError(f"cannot load the adapter in {folder}: {first_line(exc)}") from exc
