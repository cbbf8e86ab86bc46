"""The model-folder format without a model: content hash, manifest, kind inference, tag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.model_folder import (
    MANIFEST_FILE,
    ArtifactError,
    ModelKind,
    bento_model_tag,
    content_sha256,
    read_manifest,
    verify_content,
)
from conveyor.model_folder.hashing import file_hashes
from conveyor.model_folder.manifest import write_manifest

pytestmark = pytest.mark.unit


def _folder(root: Path, kind: ModelKind | None = ModelKind.CLASSIFIER) -> Path:
    root.mkdir()
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (root / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (root / "tokenizer.json").write_text('{"vocab": {"a": 0, "b": 1}}')
    (root / "label_map.json").write_text('{"a": 0, "b": 1}')
    if kind is not None:
        write_manifest(root, kind, file_hashes(root))
    return root


def _flip_bit(path: Path, offset: int = 7) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_hash_is_deterministic_and_covers_names_and_bytes(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b")
    assert content_sha256(a) == content_sha256(b)
    assert len(content_sha256(a)) == 64
    (b / "tokenizer.json").rename(b / "tokenizer2.json")
    assert content_sha256(a) != content_sha256(b), "a renamed file changes the hash"


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", MANIFEST_FILE])
def test_one_flipped_bit_anywhere_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    folder = _folder(tmp_path / "m")
    registered = content_sha256(folder)
    verify_content(folder, registered)
    _flip_bit(folder / name, offset=2)
    with pytest.raises(ArtifactError, match="registered content sha256") as caught:
        verify_content(folder, registered)
    assert name in str(caught.value) or "unreadable" in str(caught.value)
    assert registered[:16] in str(caught.value)


def test_packaging_outputs_and_the_store_file_are_not_content(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m")
    before = content_sha256(folder)
    for name in ("model.onnx", "onnx.json", "model.yaml"):
        (folder / name).write_text("added after registration")
    assert content_sha256(folder) == before
    (folder / "extra.txt").write_text("any other file counts")
    assert content_sha256(folder) != before


def test_the_manifest_says_the_kind_and_old_folders_are_inferred(tmp_path: Path) -> None:
    written = read_manifest(_folder(tmp_path / "new", ModelKind.CAUSAL_LM))
    assert written.kind is ModelKind.CAUSAL_LM and not written.inferred
    assert written.format_version == 1 and "model.safetensors" in written.files
    old = _folder(tmp_path / "old", kind=None)
    assert read_manifest(old).kind is ModelKind.CLASSIFIER and read_manifest(old).inferred
    (old / "label_map.json").unlink()
    (old / "config.json").write_text('{"architectures": ["GPT2LMHeadModel", "LlamaForCausalLM"]}')
    assert read_manifest(old).kind is ModelKind.CAUSAL_LM
    (old / "config.json").write_text("{}")
    with pytest.raises(ArtifactError, match="cannot tell what kind"):
        read_manifest(old)
    assert read_manifest(old, default_kind=ModelKind.CLASSIFIER).kind is ModelKind.CLASSIFIER


def test_a_newer_format_or_unknown_keys(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "added_later": {"x": 1}}))
    assert read_manifest(folder).kind is ModelKind.CLASSIFIER, "unknown keys are ignored"
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="upgrade conveyor"):
        read_manifest(folder)
    (folder / MANIFEST_FILE).write_text(json.dumps({"kind": "telepathy"}))
    with pytest.raises(ArtifactError, match=MANIFEST_FILE):
        read_manifest(folder)


def test_bento_model_tag_names_version_and_folder() -> None:
    assert bento_model_tag("intents:v3", "/m/intents/0123456789abcdef") == (
        "intents:v3-0123456789abcdef"
    )
    assert bento_model_tag("intents:v3", None) == "intents:v3-none"
    assert bento_model_tag("intents:v3", "/m/x", "f" * 64) == "intents:v3-" + "f" * 16
