"""Versions as adapters: one base model per worker, its LoRA adapters, one engine over them.

A ``lora-adapter`` version is a few megabytes on a base named by hash (:class:`BaseRef`). The
worker's :class:`AdapterPool` keeps each base once (keyed by that hash) as a peft model; a
version adds its adapter with ``PeftModel.load_adapter`` and removes it with
``delete_adapter``. Both run on the engine's decode thread between two steps, and a delete
waits until no request for that adapter runs or waits, so requests in flight never see the
model change under them. All versions on a base share one :class:`DecodeEngine`: rows of
different versions decode in the same forward pass (peft's mixed-batch ``adapter_names``).
When a base's last adapter goes, its engine finishes what it has and the base is dropped.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.model_folder import (
    ArtifactError,
    BaseRef,
    LoadedModel,
    ModelKind,
    load_pretrained_in_memory,
    read_manifest,
    resolve_base_ref,
    verify_content,
)
from serving.engine.decoding import DecodeEngine

__all__ = ["AdapterPool", "SharedBase", "adapter_name", "is_adapter_folder"]

log = logging.getLogger(__name__)
_serial = itertools.count(1)


def adapter_name(version: str) -> str:
    """A peft adapter name for ``version`` (no dots), unique in this process: a version
    dropped and loaded again never meets its own adapter still waiting to be deleted."""
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', version)}_{next(_serial)}"


def is_adapter_folder(folder: Path | None) -> bool:
    return folder is not None and (folder / "adapter_config.json").is_file()


@dataclass
class SharedBase:
    """A base model held once, the adapters on it (name -> folder), and their engine."""

    key: str
    model: Any  # a peft model over the base
    engine: DecodeEngine
    adapters: dict[str, Path] = field(default_factory=dict)


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _checked(folder: Path | None, expected_sha256: str | None) -> tuple[Path, BaseRef]:
    if folder is None or not folder.is_dir():
        raise ArtifactError(f"artifact missing: {folder} does not exist")
    if expected_sha256:
        verify_content(folder, expected_sha256)
    manifest = read_manifest(folder)
    if manifest.kind is not ModelKind.LORA_ADAPTER or manifest.base is None:
        raise ArtifactError(f"{folder} holds a {manifest.kind} model, not a LoRA adapter on a base")
    return folder, manifest.base


class AdapterPool:
    """The shared bases of one worker process, keyed by the base's SHA-256."""

    def __init__(self, cache_dir: Path | None = None, *, max_batch: int = 8) -> None:
        self.cache_dir = cache_dir
        self.max_batch = max_batch
        self._bases: dict[str, SharedBase] = {}
        self._lock = threading.Lock()

    def bases(self) -> dict[str, SharedBase]:
        with self._lock:
            return dict(self._bases)

    def load(
        self, folder: Path | None, version: str, *, expected_sha256: str | None = None
    ) -> tuple[LoadedModel, SharedBase, str]:
        """Check the adapter folder, put it on its base (loading the base if this worker has
        none yet): the version as a LoadedModel, the shared base, and the adapter's name."""
        path, ref = _checked(folder, expected_sha256)
        tokenizer = _tokenizer(path)
        name = adapter_name(version)
        with self._lock:
            shared = self._bases.get(ref.sha256)
            if shared is None or shared.engine.closed:
                shared = self._open(ref, path, name, tokenizer)
                self._bases[ref.sha256] = shared
            else:
                load = lambda: shared.model.load_adapter(  # noqa: E731
                    str(path), adapter_name=name, is_trainable=False
                )
                try:
                    shared.engine.call_between_steps(load).result()
                except Exception as exc:  # peft raises many types for a bad folder
                    raise ArtifactError(f"cannot load the adapter in {path}: {exc}") from exc
            shared.adapters[name] = path
        loaded = LoadedModel(
            path, "causal-lm", shared.model, tokenizer, None, ModelKind.LORA_ADAPTER, ref
        )
        return loaded, shared, name

    def _open(self, ref: BaseRef, folder: Path, name: str, tokenizer: Any) -> SharedBase:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base_folder = resolve_base_ref(ref, self.cache_dir or _default_cache_dir())
        try:
            base = load_pretrained_in_memory(AutoModelForCausalLM, base_folder)
            model = PeftModel.from_pretrained(
                base, str(folder), adapter_name=name, is_trainable=False
            )
        except Exception as exc:  # peft and transformers raise many types for a bad folder
            raise ArtifactError(f"cannot load the adapter in {folder}: {exc}") from exc
        model.eval()
        engine = DecodeEngine(model, tokenizer, max_batch=self.max_batch, name=ref.sha256[:12])
        log.info("base %s (%s) loaded for adapters", ref.name, ref.sha256[:12])
        return SharedBase(ref.sha256, model, engine)

    def release(self, key: str, name: str) -> None:
        """Remove adapter ``name`` once no request uses it; the base goes with its last one."""
        with self._lock:
            shared = self._bases.get(key)
            if shared is None or shared.adapters.pop(name, None) is None:
                return
            if not shared.adapters:
                del self._bases[key]
                shared.engine.retire()  # finishes what it has, then its thread ends
                log.info("base %s released with its last adapter", key[:12])
                return
        model = shared.model
        shared.engine.call_between_steps(lambda: model.delete_adapter(name), unused=name)


def _default_cache_dir() -> Path:
    from conveyor.settings import Settings

    return Settings().cache_dir
