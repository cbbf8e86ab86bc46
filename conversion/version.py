"""``convert_version``: a trained causal-LM version written again as GGUF, a new version of
the same deployment, loaded once by llama.cpp before it is registered."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from conversion.errors import ConversionError
from conversion.gguf_file import QUANTS, write_gguf
from conversion.gguf_layout import layout_for
from conveyor.gguf_base import locate_gguf, parse_gguf_base
from conveyor.model_folder import (
    GGUF_FILE,
    ModelKind,
    load_model,
    read_manifest,
    register_model_folder,
    write_gguf_folder,
)
from conveyor.pretrained import SMOLLM2, file_sha256, smollm2_gguf
from conveyor.recipe import Recipe
from conveyor.registry import Registry, VersionRecord, VersionStatus
from conveyor.settings import Settings

__all__ = ["convert_version"]

log = logging.getLogger(__name__)
METHOD = "gguf"


def _source_gguf(base: str) -> Path | None:
    """The GGUF a built-in base came from (its tokenizer fields are copied as they were)."""
    spec = parse_gguf_base(base)
    if spec is not None:
        return locate_gguf(spec)
    return smollm2_gguf() if base == SMOLLM2 else None


def _check_convertible(record: VersionRecord) -> ModelKind:
    if record.task != "causal-lm":
        raise ConversionError(
            f"{record.version} is a {record.task} version: only causal-lm versions convert to GGUF"
        )
    if record.artifact_uri is None:
        raise ConversionError(f"{record.version} has no model folder recorded")
    kind = read_manifest(record.artifact_uri).kind
    if kind is ModelKind.GGUF:
        raise ConversionError(f"{record.version} is already GGUF")
    return kind


def _loads_in_llamacpp(path: Path, prompt_ids: list[int]) -> None:
    """Load the written file in llama.cpp and decode one token, or ConversionError."""
    from conveyor.llamacpp import LlamaCppModel

    try:
        model = LlamaCppModel(path, context=64, slots=1, threads=1)
        try:
            model.complete(prompt_ids[:32] or [0], 1)
        finally:
            model.close()
    except Exception as exc:
        raise ConversionError(f"llama.cpp cannot run the written GGUF: {exc}") from exc


def _lineage(record: VersionRecord, quant: str, source: Path | None) -> dict[str, Any]:
    import gguf

    return {
        "parent": record.version,
        "parent_sha256": record.content_sha256,
        "method": METHOD,
        "settings": {"quant": quant},
        "converter": f"conveyor conversion with gguf {gguf.__version__}"
        if hasattr(gguf, "__version__")
        else "conveyor conversion with gguf",
        "tokenizer_from": str(source) if source else "the version's tokenizer folder",
        "tokenizer_source_sha256": file_sha256(source) if source else None,
    }


def convert_version(
    registry: Registry, settings: Settings, ref: str, *, quant: str = "q8_0"
) -> VersionRecord:
    """Write ``ref`` as GGUF (``quant``: f16, q8_0 or q4_0) and register the new version
    (status ``trained``: it still has to pass its parity gate before it may serve)."""
    if quant not in QUANTS:
        raise ConversionError(f"--quant {quant!r}: choose one of {', '.join(QUANTS)}")
    record = registry.resolve(ref)
    kind = _check_convertible(record)
    recipe = Recipe.model_validate(record.recipe)  # stored, resolved: its data may be gone
    started = time.monotonic()
    loaded = load_model(
        record.artifact_uri,
        "causal-lm",
        expected_sha256=record.content_sha256,
        cache_dir=settings.cache_dir,
    )
    model = loaded.model.merge_and_unload() if kind is ModelKind.LORA_ADAPTER else loaded.model
    layout_for(model)  # refused by name before anything is written
    source = _source_gguf(recipe.model.base)
    log.info("converting %s to GGUF %s (%s)", record.version, quant, kind)
    write = partial(
        write_gguf,
        model,
        loaded.tokenizer,
        quant=quant,
        tokenizer_folder=loaded.folder,
        source_gguf=source,
        name=f"{record.version} {quant}",
    )
    lineage = _lineage(record, quant, source)
    metrics = {"converted_from": record.version, "method": METHOD, "quant": quant}
    folder = write_gguf_folder(
        settings.models_dir,
        record.deployment,
        write,
        loaded.tokenizer,
        metrics=metrics,
        recipe=record.recipe,
        lineage=lineage,
    )
    probe = loaded.tokenizer("Hello", add_special_tokens=False)["input_ids"]
    _loads_in_llamacpp(folder / GGUF_FILE, list(probe))
    seconds = round(time.monotonic() - started, 1)
    size_mb = round((folder / GGUF_FILE).stat().st_size / 1e6, 1)
    reason = f"converted from {record.version} to GGUF {quant} in {seconds} s ({size_mb} MB)"
    new = register_model_folder(
        registry,
        folder,
        recipe=recipe,
        metrics=metrics | {"gguf_mb": size_mb, "convert_s": seconds},
        data_fingerprint=record.data_fingerprint,
        reason=reason,
        status=VersionStatus.TRAINED,
    )
    log.info("%s: %s", new.version, reason)
    return new
