"""A registered model folder is what serves: its SHA-256 is checked at every load.

A folder changed by one bit (weights, tokenizer, anything) is refused with an ArtifactError
naming the file, so it never takes traffic; old folders and rows still load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor.model_folder import MANIFEST_FILE, ArtifactError, content_sha256, read_manifest
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.packaging import package_version
from serving.engine.onnx_backend import ONNX_FILE
from serving.worker.loading import load_version, model_folder
from testbed.versions import make_version, zero_in_place

pytestmark = pytest.mark.integration


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_registration_stores_the_spec_and_the_full_hash(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    record = registry.resolve(make_version(registry, settings, tokenizer, 1))
    folder = Path(record.artifact_uri or "")
    assert record.content_sha256 == content_sha256(folder)
    assert record.serving_spec["spec_version"] == 1
    assert record.serving_spec["max_length"] == 48
    assert record.serving_spec["rollback"]["min_requests"] == 10
    assert read_manifest(folder).kind == "classifier"
    assert "tokenizer.json" in read_manifest(folder).files
    assert load_version(record).max_length == 48


def test_a_loaded_version_does_not_change_when_its_files_do(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    """The weights are read whole at load, not mapped: a worker serves what its hash checked.
    Mapped (transformers' default), the zeroed file changed every answer below, and a file
    truncated under a worker killed it with SIGBUS (a fault test's survivor died that way)."""
    from serving.engine.inference import classify_texts

    # A seed no packaging test uses: BentoML's model store is one per process, so a copy of an
    # identical model packaged by an earlier test (same content, same tag) would be loaded
    # instead of this test's changed folder.
    record = registry.resolve(make_version(registry, settings, tokenizer, 41))
    served = load_version(record)
    texts = ["set a timer for ten minutes", "what does ephemeral mean", "send 20 dollars to bo"]
    before = classify_texts(served.loaded, texts, top_k=4, max_length=48)
    zero_in_place(Path(record.artifact_uri or "") / "model.safetensors")
    assert classify_texts(served.loaded, texts, top_k=4, max_length=48) == before
    with pytest.raises(ArtifactError, match="changed: model.safetensors"):
        load_version(record)  # while the next load refuses the changed folder


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_a_bit_flipped_folder_is_refused_naming_the_file(
    registry: Registry, settings: Settings, tokenizer: Any, name: str
) -> None:
    record = registry.resolve(make_version(registry, settings, tokenizer, 2))
    _flip_bit(Path(record.artifact_uri or "") / name)
    with pytest.raises(ArtifactError) as caught:
        load_version(record)
    message = str(caught.value)
    assert f"changed: {name}" in message
    assert (record.content_sha256 or "")[:16] in message and "refusing to load" in message
    with pytest.raises(ArtifactError, match=f"changed: {name}"):
        package_version(registry, record.version, build_bento=False)


def test_a_bit_flipped_onnx_export_is_refused(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    version = make_version(registry, settings, tokenizer, 3, serving={"backend": "onnx"})
    package_version(registry, version, build_bento=False)
    record = registry.resolve(version)
    folder = model_folder(record)
    assert folder is not None and (folder / ONNX_FILE).is_file()
    assert load_version(record).backend == "onnx", "the store's copy passes its own check"
    # BentoML fixes its model store on first use in a process, so this folder outlives the
    # test and other tests of the same seeded model share its tag: put the bytes back after.
    original = (folder / ONNX_FILE).read_bytes()
    _flip_bit(folder / ONNX_FILE)
    try:
        with pytest.raises(ArtifactError, match="does not match the sha256 recorded"):
            load_version(record)
    finally:
        (folder / ONNX_FILE).write_bytes(original)


def test_a_folder_and_row_older_than_manifest_spec_and_hash_still_serve(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    new = registry.resolve(make_version(registry, settings, tokenizer, 4))
    folder = Path(new.artifact_uri or "")
    (folder / MANIFEST_FILE).unlink()
    recipe = {**new.recipe, "serving": {**new.recipe["serving"], "a_key_no_longer_known": 1}}
    old = registry.register_version(
        new.deployment,
        task="classification",
        base_model="tiny",
        recipe=json.loads(json.dumps(recipe)),
        artifact_uri=str(folder),
    )
    assert old.serving_spec == {} and old.content_sha256 is None
    served = load_version(old)
    assert served.loaded.label_names is not None and served.max_length == 48
