"""``distil_version``: a registered teacher version -> a smaller student, a new version.

Reads the teacher's stored recipe (overridden like ``conveyor train``'s ``--set``), loads the
teacher (a LoRA adapter merged into its base), checks that the student's tokenizer is the
teacher's, and trains the student on the same DeepSpeed engine and loop as every fine-tune
(checkpoints, ``resume``, progress, NaN handling are the loop's own). The student's version
names its teacher in its lineage and metrics (``distilled_from``, ``method: distil``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from conveyor.model_folder import ModelKind, load_model, read_manifest
from conveyor.recipe import Recipe, recipe_from_dict
from conveyor.recipe.compress import FULL_WEIGHTS_LR
from conveyor.registry import Registry, VersionRecord
from conveyor.settings import Settings
from training.distil import DistillationError, DistilSettings, Teacher, check_vocabularies
from training.fine_tune import TrainResult, fine_tune
from training.modeling import load_tokenizer, resolve_base

__all__ = ["METHOD", "distil_version", "parse_student", "student_lr", "student_recipe"]

log = logging.getLogger("training")
METHOD = "distil"
_TORCH_KINDS = (ModelKind.CLASSIFIER, ModelKind.CAUSAL_LM, ModelKind.LORA_ADAPTER)


def parse_student(text: str) -> int:
    """``layers=K`` (the student's size) to K, or DistillationError saying what to write."""
    key, _, value = text.partition("=")
    if key.strip() != "layers" or not value.strip().isdigit() or int(value) < 1:
        raise DistillationError(f"--student {text!r}: write layers=K, K a positive integer")
    return int(value)


def student_lr(recipe: Recipe) -> float:
    """The student's learning rate: ``compress.distil.lr``, else the teacher's own, except
    after LoRA, whose rates are meant for adapters, not for the full weights a student trains."""
    if recipe.compress.distil.lr is not None:
        return recipe.compress.distil.lr
    return FULL_WEIGHTS_LR if recipe.training.lora.enabled else recipe.training.lr


def student_recipe(record: VersionRecord, layers: int, overrides: Sequence[str]) -> Recipe:
    """The teacher's recipe for its student: ``compress.distil.layers`` set, full weights (no
    LoRA) at :func:`student_lr`, the head at the body's learning rate (it is trained already),
    then ``overrides`` (a ``training.lr`` given there wins)."""
    source = f"recipe of {record.version}"
    asked = recipe_from_dict(record.recipe, list(overrides), source=source)
    forced = [
        f"compress.distil.layers={layers}",
        "training.lora.enabled=false",
        "training.head_lr_multiplier=1.0",
        f"training.lr={student_lr(asked)!r}",
    ]
    return recipe_from_dict(record.recipe, [*forced, *overrides], source=source)


def _teacher_model(record: VersionRecord, settings: Settings) -> Any:
    if record.artifact_uri is None:
        raise DistillationError(f"{record.version} has no model folder recorded")
    kind = read_manifest(record.artifact_uri).kind
    if kind not in _TORCH_KINDS:
        raise DistillationError(
            f"{record.version} is {kind}: distil the version it was converted from"
        )
    loaded = load_model(
        record.artifact_uri,
        record.task,
        expected_sha256=record.content_sha256,
        cache_dir=settings.cache_dir,
    )
    model = loaded.model.merge_and_unload() if kind is ModelKind.LORA_ADAPTER else loaded.model
    return loaded, model


def distil_version(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    layers: int,
    overrides: Sequence[str] = (),
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train a ``layers``-layer student of ``ref`` and register it (status ``trained``)."""
    record = registry.resolve(ref)
    recipe = student_recipe(record, layers, overrides)
    loaded, model = _teacher_model(record, settings)
    teacher_layers = int(model.config.num_hidden_layers)
    if layers >= teacher_layers:
        raise DistillationError(
            f"--student layers={layers}: a student must be smaller than its teacher "
            f"{record.version} ({teacher_layers} layers)"
        )
    student_tokenizer = load_tokenizer(resolve_base(recipe.model.base, settings.cache_dir))
    check_vocabularies(loaded.tokenizer, record.version, student_tokenizer, recipe.model.base)
    d = recipe.compress.distil
    teacher = Teacher(
        record.version, model, loaded.label_names, DistilSettings(layers, d.temperature, d.alpha)
    )
    log.info("distilling %s (%d layers) into %d layers", record.version, teacher_layers, layers)
    lineage = {
        "parent": record.version,
        "parent_sha256": record.content_sha256,
        "method": METHOD,
        "distilled_from": record.version,
        "student_layers": layers,
        "teacher_layers": teacher_layers,
        "settings": {"layers": layers, "temperature": d.temperature, "alpha": d.alpha},
    }
    return fine_tune(
        recipe,
        settings,
        resume=resume,
        show_progress=show_progress,
        registry=registry,
        teacher=teacher,
        lineage=lineage,
    )
