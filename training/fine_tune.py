"""``fine_tune(recipe, settings)``: data -> DeepSpeed engine -> model folder -> registry.

The only function here that reads the whole recipe; everything it calls takes plain
arguments. Every process of a multi-GPU run calls it; rank 0 alone writes the model
folder and registers the version.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conveyor.capture_format import captured_lineage
from conveyor.model_folder import base_ref_for, register_model_folder, write_model_folder
from conveyor.offline import apply_offline_environment
from conveyor.pretrained import resolve_pretrained
from conveyor.recipe import Recipe, Task
from conveyor.recipe.schema import DataFormat
from conveyor.registry import Registry, VersionStatus, open_registry
from conveyor.settings import Settings
from conveyor.splits import fingerprint_splits
from training import engine as ds
from training.checkpoints import TrainState, load_checkpoint, resume_problem, write_run_meta
from training.data import (
    Encoded,
    LabelMap,
    encode_causal_lm,
    encode_classification,
    read_texts,
)
from training.data.chat import encode_chat, read_chat, read_training_chats
from training.data.text import read_training_texts
from training.distil import Distiller, Teacher, student_from
from training.errors import LabelMismatchError, ResumeError
from training.loop import FitResult, LoopSettings, eval_batch_size, fit
from training.lora import LoraSettings, wrap_with_lora
from training.modeling import (
    TINY_GPT2,
    build_causal_lm,
    build_classifier,
    load_tokenizer,
    resolve_base,
    train_bpe_tokenizer,
)

__all__ = ["Prepared", "TrainResult", "checkpoint_dir", "fine_tune", "prepare", "resumable"]

log = logging.getLogger("training")


@dataclass(frozen=True)
class TrainResult:
    """What a run produced; ``version`` and ``model_dir`` are None on ranks other than 0."""

    version: str | None
    model_dir: Path | None
    metrics: dict[str, float]
    steps: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """Tokenizer, model and encoded splits, ready for the engine."""

    tokenizer: Any
    model: Any
    train: Encoded
    validation: Encoded
    label_names: tuple[str, ...] | None
    pad_id: int


def checkpoint_dir(settings: Settings, deployment: str) -> Path:
    return settings.home / "checkpoints" / deployment


def resumable(settings: Settings, recipe: Recipe) -> bool:
    """Whether ``recipe`` can continue from its deployment's checkpoints (same data and recipe)."""
    fingerprint = fingerprint_splits(recipe.data.fingerprinted())
    directory = checkpoint_dir(settings, recipe.name)
    return resume_problem(directory, fingerprint, recipe.model_dump(mode="json")) is None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _causal_tokenizer(recipe: Recipe, texts: list[str], saved: Path) -> Any:
    if recipe.model.base != TINY_GPT2:
        return load_tokenizer(resolve_base(recipe.model.base))
    if (saved / "tokenizer.json").is_file():
        return load_tokenizer(TINY_GPT2, saved)
    tokenizer = train_bpe_tokenizer(texts, int(recipe.model.config.get("vocab_size", 4096)))
    tokenizer.save_pretrained(saved)
    return tokenizer


def _logit_width(recipe: Recipe, prepared: Prepared) -> int | None:
    """A language model's vocabulary (its logits per token); None for a classifier."""
    if recipe.task is not Task.CAUSAL_LM:
        return None
    return int(getattr(prepared.model.config, "vocab_size", 0)) or None


def _student(teacher: Teacher, label_names: tuple[str, ...] | None) -> Distiller:
    """The distillation module: a student from every other layer of ``teacher``."""
    if teacher.label_names is not None and teacher.label_names != label_names:
        raise LabelMismatchError(
            f"the training data's labels are not {teacher.version}'s: a student learns its "
            "teacher's classes, in its order"
        )
    student = student_from(teacher.model, teacher.settings.layers)
    return Distiller(student, teacher.model, teacher.settings)


def prepare(recipe: Recipe, work_dir: Path, teacher: Teacher | None = None) -> Prepared:
    """Read and tokenize the splits and build the model the recipe names (or, given a
    ``teacher``, a student distilled from it: :mod:`training.distil`)."""
    data, max_length = recipe.data, recipe.model.max_length
    train_texts: list[str] = []
    val_texts: list[str] = []
    train_labels: list[str] = []
    val_labels: list[str] = []
    if data.format is not DataFormat.CHAT:
        train_texts, train_labels = read_training_texts(
            data.train_files(), data.text_field, data.label_field
        )
        val_texts, val_labels = read_texts(data.validation, data.text_field, data.label_field)
    _seed_everything(recipe.training.seed)
    if recipe.task is Task.CLASSIFICATION:
        labels = LabelMap.from_labels(train_labels)
        val_ids = labels.ids(val_labels, "validation")
        model = (
            _student(teacher, labels.names)
            if teacher
            else build_classifier(recipe.model.base, labels, dict(recipe.model.config))
        )
        tokenizer = load_tokenizer(resolve_base(recipe.model.base))
        train = encode_classification(
            tokenizer, train_texts, labels.ids(train_labels, "train"), max_length
        )
        validation = encode_classification(tokenizer, val_texts, val_ids, max_length)
        label_names: tuple[str, ...] | None = labels.names
    else:
        overrides = {k: v for k, v in recipe.model.config.items() if k != "vocab_size"}
        tokenizer = _causal_tokenizer(recipe, train_texts, work_dir / "tokenizer")
        model = (
            _student(teacher, None)
            if teacher
            else build_causal_lm(recipe.model.base, tokenizer, max_length, overrides)
        )
        if recipe.data.format is DataFormat.CHAT:
            train = encode_chat(tokenizer, read_training_chats(data.train_files()), max_length).data
            validation = encode_chat(
                tokenizer, read_chat(data.validation), max_length, "validation"
            ).data
        else:
            train = encode_causal_lm(tokenizer, train_texts, max_length)
            validation = encode_causal_lm(tokenizer, val_texts, max_length)
        lora = recipe.training.lora
        if lora.enabled:
            adapters = LoraSettings(lora.r, lora.alpha, lora.dropout, tuple(lora.target_modules))
            model = wrap_with_lora(model, adapters, recipe.model.base)
        label_names = None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Prepared(tokenizer, model, train, validation, label_names, int(pad_id))


def _start(directory: Path, resume: bool, fingerprint: str, recipe: Recipe, rank: int) -> None:
    if resume:
        problem = resume_problem(directory, fingerprint, recipe.model_dump(mode="json"))
        if problem is not None:
            raise ResumeError(f"--resume: {problem}; run without --resume to start over")
        return
    if rank == 0:
        if directory.exists():
            log.info("starting over: removing old checkpoints in %s", directory)
            shutil.rmtree(directory)
        write_run_meta(
            directory, {"data_fingerprint": fingerprint, "recipe": recipe.model_dump(mode="json")}
        )
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def _metrics(fit_result: FitResult) -> dict[str, float]:
    metrics = {f"validation_{k}": v for k, v in fit_result.metrics.items()}
    metrics.update(
        train_loss=fit_result.train_loss,
        train_steps=fit_result.state.step,  # counts stay ints: shown `400`, not `400.0`
        train_samples=fit_result.state.samples,
        train_seconds=fit_result.seconds,
        train_samples_per_second=fit_result.samples_per_second,
    )
    return metrics


@ds.own_rank_environment
def fine_tune(
    recipe: Recipe,
    settings: Settings,
    *,
    resume: bool = False,
    show_progress: bool = True,
    registry: Registry | None = None,
    deepspeed_config: dict[str, Any] | None = None,
    teacher: Teacher | None = None,
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune the recipe's model with DeepSpeed, write the model folder, register it.

    With ``teacher`` the model is a student distilled from it (:mod:`training.distil`);
    ``lineage`` is recorded beside the data's (and, as plain values, in the metrics).

    ``deepspeed_config`` (an ``infra/deepspeed/*.json``) merges over conveyor's config;
    the recipe's ``training.deepspeed`` merges over both.
    """
    apply_offline_environment(settings)
    t = recipe.training
    fingerprint = fingerprint_splits(recipe.data.fingerprinted())
    directory = checkpoint_dir(settings, recipe.name)
    rank = int(os.environ.get("RANK", "0"))
    _start(directory, resume, fingerprint, recipe, rank)
    prepared = prepare(recipe, directory, teacher)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    total = recipe.training.planned_steps(len(prepared.train), world)
    on_gpu = t.gpus > 0 and torch.cuda.is_available()
    precision = ds.resolve_precision(t.precision, on_gpu)
    config, clip_norm = ds.move_clipping_to_loop(
        ds.deepspeed_config(
            micro_batch_size=t.batch_size,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            world_size=world,
            zero_stage=t.zero_stage,
            precision=precision,
            max_grad_norm=t.max_grad_norm,
            extra=ds.merge_config(deepspeed_config or {}, t.deepspeed),
        )
    )
    zero_stage = int(config["zero_optimization"].get("stage", 0))
    if on_gpu:
        prepared.model.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))))
    optimizer = ds.build_optimizer(prepared.model, t.lr, t.weight_decay, t.head_lr_multiplier)
    scheduler = ds.build_scheduler(optimizer, total, t.warmup_ratio)
    engine = ds.initialize(prepared.model, optimizer, scheduler, config)
    if t.compile:
        engine.compile()
    state, last = load_checkpoint(engine, directory) if resume else (TrainState(), None)
    log.info(
        "training %s: %d examples, %d steps, batch %d x %d accumulation x %d processes, %s, "
        "ZeRO %d%s",
        recipe.name,
        len(prepared.train),
        total,
        t.batch_size,
        t.gradient_accumulation_steps,
        world,
        precision,
        zero_stage,
        ", compiled" if t.compile else "",
    )
    loop_cfg = LoopSettings(
        total_steps=total,
        batch_size=t.batch_size,
        seed=t.seed,
        checkpoint_every=t.checkpoint_every_steps,
        checkpoint_dir=directory,
        eval_every=t.eval_every_steps,
        patience=t.early_stopping_patience,
        max_length=recipe.model.max_length,
        eval_batch_size=eval_batch_size(recipe.model.max_length, _logit_width(recipe, prepared)),
        zero_stage=zero_stage,
        show_progress=show_progress,
        clip_grad_norm=clip_norm,
    )
    result = fit(
        engine,
        prepared.train,
        prepared.validation,
        pad_id=prepared.pad_id,
        cfg=loop_cfg,
        state=state,
        last_checkpoint=last,
    )
    metrics = _metrics(result)
    state_dict = engine._zero3_consolidated_16bit_state_dict() if zero_stage == 3 else None
    if engine.global_rank != 0:
        return TrainResult(None, None, metrics, result.state.step, result.stopped_early)
    derived = lineage or {}
    return _publish(
        recipe, settings, prepared, result, metrics, fingerprint, state_dict, registry, derived
    )


def _publish(
    recipe: Recipe,
    settings: Settings,
    prepared: Prepared,
    result: FitResult,
    metrics: dict[str, float],
    fingerprint: str,
    state_dict: dict[str, Any] | None,
    registry: Registry | None,
    derived: dict[str, Any],
) -> TrainResult:
    lineage: dict[str, Any] = {"data_fingerprint": fingerprint, "base_model": recipe.model.base}
    lineage |= derived
    metrics = {**metrics, **{k: v for k, v in derived.items() if not isinstance(v, dict)}}
    if recipe.data.extra:  # which captured rows (a reviewed traffic export) it trained on
        lineage["extra_data"] = captured_lineage(recipe.data.extra)
    base = None
    if recipe.training.lora.enabled:
        base, _ = base_ref_for(recipe.model.base, settings.cache_dir)
        lineage |= {"base_sha256": base.sha256, "base_hash_of": base.hash_of}
    elif (converted := resolve_pretrained(recipe.model.base, settings.cache_dir)) is not None:
        lineage |= {"base_sha256": converted.source_sha256, "base_hash_of": "source"}
    model_dir = write_model_folder(
        settings.models_dir,
        recipe.name,
        prepared.model,
        prepared.tokenizer,
        label_names=prepared.label_names,
        metrics={**metrics, "history": result.state.history},
        recipe=recipe.model_dump(mode="json"),
        lineage=lineage,
        state_dict=state_dict,
        base=base,
    )
    own_registry = registry is None
    reg = open_registry(settings) if registry is None else registry
    try:
        record = register_model_folder(
            reg,
            model_dir,
            recipe=recipe,
            metrics=metrics,
            data_fingerprint=fingerprint,
            reason=f"fine-tuned for {result.state.step} steps",
            status=VersionStatus.TRAINED,
        )
    finally:
        if own_registry:
            reg.close()
    shutil.rmtree(checkpoint_dir(settings, recipe.name), ignore_errors=True)
    log.info("registered %s (model folder %s)", record.version, model_dir)
    return TrainResult(
        record.version,
        model_dir,
        metrics,
        result.state.step,
        result.stopped_early,
        result.state.history,
    )
