"""ONNX: packaging exports classification versions, ONNX Runtime matches PyTorch, and a
version whose recipe says ``backend: onnx`` is served by ONNX Runtime."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.model_folder import load_model
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.packaging import package_version
from serving.engine.inference import classify_texts
from serving.engine.onnx_backend import ONNX_FILE, PARITY_TEXTS
from serving.worker.loading import load_version, model_folder
from testbed.versions import make_version

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["onnx", "auto", "torch"])
def test_packaged_onnx_matches_pytorch_and_serves(
    registry: Registry, settings: Settings, tokenizer: Any, backend: str
) -> None:
    version = make_version(registry, settings, tokenizer, 3, serving={"backend": backend})
    packaged = package_version(registry, version, build_bento=False)
    assert packaged.onnx_max_abs_diff is not None and packaged.onnx_max_abs_diff < 1e-4
    record = registry.resolve(version)
    assert record.metrics["onnx"]["max_abs_diff"] == packaged.onnx_max_abs_diff
    folder = model_folder(record)
    assert folder is not None and (folder / ONNX_FILE).is_file()

    served = load_version(record)
    assert served.backend in ({"onnx"} if backend == "onnx" else {"onnx", "torch"})
    if backend == "torch":
        assert served.backend == "torch"
    torch_model = load_model(record.artifact_uri, "classification")
    texts = [*PARITY_TEXTS, "a text the parity set never saw, of middling length"]
    got = classify_texts(served.loaded, texts, 4, 48)
    want = classify_texts(torch_model, texts, 4, 48)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"]
        for a, b in zip(g["top_k"], w["top_k"], strict=True):
            assert a["label"] == b["label"] and abs(a["score"] - b["score"]) < 1e-5


def test_backend_onnx_without_an_export_is_refused(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    from conveyor.model_folder import ArtifactError

    version = make_version(registry, settings, tokenizer, 4, serving={"backend": "onnx"})
    with pytest.raises(ArtifactError, match="package it"):
        load_version(registry.resolve(version))


def test_packaging_twice_reuses_the_immutable_bento(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    version = make_version(registry, settings, tokenizer, 4)
    first = package_version(registry, version)
    again = package_version(registry, version)
    assert first.bento_tag is not None and again.bento_tag == first.bento_tag
    assert again.model_tag == first.model_tag
