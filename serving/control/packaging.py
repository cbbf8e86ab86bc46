"""``conveyor package``: a version into the BentoML model store, and an immutable Bento pinning it.

Only safetensors (or GGUF, or an int8 version's ONNX graph) weights, configs and tokenizer
files are copied (no pickle on the serving path); the Bento is built offline
(``lock_packages: false``, no hub calls) and carries its pin in its source
(:mod:`serving.bento_pin`), so the service inside serves that one model.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.model_folder import (
    WEIGHT_FILES,
    ArtifactError,
    ModelKind,
    bento_model_tag,
    read_manifest,
    verify_content,
)
from conveyor.registry import Registry, VersionStatus
from conveyor.serving_spec import serving_spec_of
from serving.bento_pin import write_pin
from serving.control.bento_contents import bento_contents
from serving.control.server import REPO_ROOT

__all__ = ["ALLOWED_SUFFIXES", "Packaged", "package_version"]

log = logging.getLogger(__name__)

# Every file of a model folder counts in its content hash, so the store's copy takes them all:
# peft writes a model card (README.md) beside a LoRA adapter.
ALLOWED_SUFFIXES = (
    ".safetensors", ".gguf", ".onnx", ".json", ".txt", ".yaml", ".model", ".jinja", ".md"
)  # fmt: skip
REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy")


@dataclass(frozen=True)
class Packaged:
    version: str
    model_tag: str
    bento_tag: str | None
    files: list[str]
    onnx_max_abs_diff: float | None = None


def _servable_files(folder: Path) -> list[Path]:
    if not any((folder / name).is_file() for name in WEIGHT_FILES):  # LoRA: the adapter
        raise ArtifactError(f"artifact incomplete: no model.safetensors in {folder}")
    pickled = [p.name for p in folder.iterdir() if p.suffix in REFUSED_SUFFIXES]
    if pickled:
        raise ArtifactError(f"{folder} holds pickle-format files {pickled}: refusing to package")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ALLOWED_SUFFIXES)


def package_version(registry: Registry, ref: str, *, build_bento: bool = True) -> Packaged:
    """Store the model (tag ``deployment:vN``) and build the Bento; audited, status PACKAGED."""
    import bentoml

    record = registry.resolve(ref)
    folder = Path(record.artifact_uri or "")
    if not record.artifact_uri or not folder.is_dir():
        raise ArtifactError(f"artifact missing for {record.version}: {folder}")
    if record.content_sha256:
        verify_content(folder, record.content_sha256)
    files = _servable_files(folder)
    tag = bento_model_tag(record.version, record.artifact_uri, record.content_sha256)
    spec = serving_spec_of(record)
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        metadata = {
            "version": record.version,
            "deployment": record.deployment,
            "number": record.number,
            "task": record.task,
            "base_model": record.base_model,
            "data_fingerprint": record.data_fingerprint or "",
            "recipe_json": json.dumps(record.recipe),
            "serving_spec_json": json.dumps(spec.as_record()),
            "content_sha256": record.content_sha256 or "",
        }
        labels = {"deployment": record.deployment, "task": record.task}
        with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
            for path in files:
                shutil.copy2(path, Path(model.path) / path.name)
            if record.content_sha256:  # the store's copy must be the registered folder
                verify_content(model.path, record.content_sha256)
            if read_manifest(folder).kind is ModelKind.CLASSIFIER:  # int8 is ONNX already
                _export_onnx(Path(model.path), spec.max_length)
    onnx_report = _onnx_report(Path(model.path))
    bento_tag = _build_bento(str(model.tag), record.deployment) if build_bento else None
    metrics = {**record.metrics, "onnx": onnx_report} if onnx_report else None
    registry.update_version(
        record.version, status=VersionStatus.PACKAGED, metrics=metrics, reason="packaged"
    )
    registry.audit(
        "version.packaged",
        deployment=record.deployment,
        version=record.version,
        details={"model_tag": str(model.tag), "bento_tag": bento_tag, "onnx": onnx_report},
    )
    diff = onnx_report.get("max_abs_diff") if onnx_report else None
    return Packaged(record.version, str(model.tag), bento_tag, [p.name for p in files], diff)


def _export_onnx(folder: Path, max_length: int) -> None:
    """``model.onnx`` beside the weights, checked against PyTorch (see the ONNX backend)."""
    from serving.engine.inference import load_for_serving
    from serving.engine.onnx_backend import export_classifier

    diff = export_classifier(load_for_serving(folder, "classification"), folder, max_length)
    log.info("ONNX export of %s: max abs difference %.3g", folder.name, diff)


def _onnx_report(folder: Path) -> dict[str, Any] | None:
    report = folder / "onnx.json"
    return dict(json.loads(report.read_text())) if report.is_file() else None


def _build_bento(model_tag: str, deployment: str) -> str:
    import bentoml

    existing = f"{deployment}:{model_tag.split(':')[1]}"
    try:  # a version's Bento is immutable: packaging it again reuses the one built first
        return str(bentoml.bentos.get(existing).tag)
    except bentoml.exceptions.NotFound:
        pass
    contents = bento_contents(REPO_ROOT)  # what the service really imports
    with tempfile.TemporaryDirectory(prefix="conveyor-bento-") as build_ctx:
        include = _build_context(Path(build_ctx), contents.include, model_tag)
        bento = bentoml.bentos.build(
            "serving.api.service:Conveyor",
            name=deployment,
            version=model_tag.split(":")[1],
            labels={"model": model_tag},
            models=[model_tag],
            include=include,
            python={"packages": contents.packages, "lock_packages": False},
            build_ctx=build_ctx,
        )
    return str(bento.tag)


def _build_context(build_ctx: Path, include: list[str], model_tag: str) -> list[str]:
    """The packages the Bento carries, copied, and its pin: what goes into its ``src/``. The
    checkout is never written to, and builds side by side never see each other's pin."""
    for package in sorted({pattern.split("/")[0] for pattern in include}):
        shutil.copytree(
            REPO_ROOT / package,
            build_ctx / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    readme = REPO_ROOT / "README.md"  # BentoML takes the build context's README as the Bento's
    if readme.is_file():
        shutil.copy2(readme, build_ctx / readme.name)
    return [*include, write_pin(build_ctx, model_tag)]
