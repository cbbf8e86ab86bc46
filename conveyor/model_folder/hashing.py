"""The content hash of a model folder: SHA-256 over every file, names and bytes, in order.

Two kinds of file are not content: those packaging adds beside the weights after
registration (the ONNX export, which carries its own hash in ``onnx.json``) and the
BentoML model store's own ``model.yaml``. Everything else counts, tokenizer included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from conveyor.model_folder.errors import ArtifactError
from conveyor.model_folder.manifest import MANIFEST_FILE, read_manifest

__all__ = ["NOT_CONTENT", "content_sha256", "file_hashes", "file_sha256", "verify_content"]

# Derived files (an ONNX export and its report, BentoML's model.yaml) and a converted base's
# own marker, which records the content hash of the rest.
NOT_CONTENT = frozenset({"model.onnx", "onnx.json", "model.yaml", "conveyor-base.json"})
_CHUNK = 1 << 20


def _content_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    kept = [p for p in files if p.relative_to(folder).as_posix() not in NOT_CONTENT]
    return sorted(kept, key=lambda p: p.relative_to(folder).as_posix())


def _update_with_file(digest: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    _update_with_file(digest, path)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of each content file but the manifest (which records them), by relative name."""
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in _content_files(folder)
        if p.relative_to(folder).as_posix() != MANIFEST_FILE
    }


def content_sha256(folder: Path | str) -> str:
    """Hex SHA-256 over each content file's relative name, size and bytes, sorted by name."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in _content_files(root):
        name = path.relative_to(root).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        _update_with_file(digest, path)
    return digest.hexdigest()


def _changed_files(folder: Path) -> str:
    """Which files differ from the manifest's record (best effort: the manifest may be hit)."""
    try:
        recorded = read_manifest(folder).files
    except ArtifactError:
        return f"{MANIFEST_FILE} itself is unreadable"
    if not recorded:
        return "the folder predates per-file hashes"
    now = file_hashes(folder)
    names = sorted(n for n in set(recorded) | set(now) if recorded.get(n) != now.get(n))
    return f"changed: {', '.join(names)}" if names else f"changed: {MANIFEST_FILE}"


def verify_content(folder: Path | str, expected: str) -> None:
    """Raise ArtifactError, naming the changed files, unless the content hash is ``expected``."""
    root = Path(folder)
    actual = content_sha256(root)
    if actual != expected:
        raise ArtifactError(
            f"{root} does not match its registered content sha256 (have {actual[:16]}...,"
            f" registered {expected[:16]}...; {_changed_files(root)}): refusing to load it"
        )
