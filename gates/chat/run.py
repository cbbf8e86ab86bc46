"""The generative path of ``evaluate_version``: load both models, answer, judge, report.

The champion is the version serving the deployment; before any version serves (the first
champion of a deployment) it is the base model itself, zero-shot, so a fine-tune must beat
the model it started from. Every loading failure is kept as the run's error, never raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.model_folder import WEIGHT_FILES, ArtifactError, ModelKind, load_model
from conveyor.pretrained import BaseModelUnavailable, resolve_pretrained
from conveyor.recipe import Recipe
from gates.chat.decide import GenerationEvaluation
from gates.chat.evaluate import (
    GenerationJudgement,
    GenerationRun,
    judge_generation,
    run_generation,
)
from gates.chat.golden import GoldenCase, load_golden
from gates.chat.report import generation_markdown, generation_payload
from gates.chat.test_set import PromptGroup, read_prompt_groups
from gates.verdict import Evaluation, Judgement

__all__ = ["ModelSource", "base_source", "judge_generation_version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where one side's model comes from: a registered version's folder, or the base."""

    name: str
    folder: str | None
    sha256: str | None = None
    zero_shot_base: bool = False
    error: str | None = None


def base_source(base: str, cache_dir: Path) -> ModelSource:
    """The recipe's base model, as a champion answering zero-shot."""
    name = f"{base} (base, zero-shot)"
    try:
        converted = resolve_pretrained(base, cache_dir)
    except BaseModelUnavailable as exc:
        return ModelSource(name, None, zero_shot_base=True, error=str(exc))
    folder = str(converted.path) if converted is not None else base
    return ModelSource(name, folder, zero_shot_base=True)


def _merged(model: Any) -> Any:
    """A LoRA model with its adapter folded into the weights: same answers, faster."""
    merge = getattr(model, "merge_and_unload", None)
    return merge() if callable(merge) else model


def _weights_mb(folder: Path) -> float:
    """Weights on disk (safetensors shards or a GGUF): the memory side of a verdict."""
    files = [p for p in folder.iterdir() if p.name in WEIGHT_FILES or p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in files) / 1e6


def _run(
    source: ModelSource,
    groups: list[PromptGroup],
    recipe: Recipe,
    golden: list[GoldenCase],
    cache_dir: Path,
) -> GenerationRun:
    if source.error is not None:
        return GenerationRun(source.name, error=source.error)
    try:
        loaded = load_model(
            source.folder, "causal-lm", expected_sha256=source.sha256, cache_dir=cache_dir
        )
    except ArtifactError as exc:
        log.warning("%s could not be loaded: %s", source.name, exc)
        return GenerationRun(source.name, error=str(exc))
    log.info("generating for %d prompts with %s", len(groups), source.name)
    run = run_generation(
        source.name,
        _merged(loaded.model),
        loaded.tokenizer,
        groups,
        generation=recipe.gates.generation,
        golden=golden,
        max_length=recipe.model.max_length,
        reference_loss=loaded.kind is not ModelKind.GGUF,  # llama.cpp gives no losses
    )
    if loaded.kind is not ModelKind.LORA_ADAPTER:  # an adapter's file is not the model's size
        run.footprint["model_size_mb"] = _weights_mb(loaded.folder)
    return run


def _as_evaluation(evaluation: GenerationEvaluation, judged: GenerationJudgement) -> Evaluation:
    interval = judged.interval if evaluation is judged.candidate else None
    return Evaluation(
        evaluation.version,
        "causal-lm",
        metrics=dict(evaluation.metrics),
        interval=interval,
        error=evaluation.error,
    )


def judge_generation_version(
    recipe: Recipe,
    candidate: ModelSource,
    champion: ModelSource,
    cache_dir: Path,
) -> Judgement:
    """Both models on the same sampled test prompts (and golden suite); verdict and report."""
    generation = recipe.gates.generation
    test_path = recipe.data.test or recipe.data.validation
    groups = read_prompt_groups(test_path, generation.max_prompts, generation.seed)
    golden = load_golden(generation.golden) if generation.golden else []
    candidate_run = _run(candidate, groups, recipe, golden, cache_dir)
    champion_run = _run(champion, groups, recipe, golden, cache_dir)
    judged = judge_generation(candidate_run, champion_run, groups, recipe.gates)
    report = generation_markdown(
        judged,
        test_path=str(test_path),
        prompts=len(groups),
        golden=candidate_run.golden,
    )
    payload = {
        **generation_payload(judged),
        "test_split": str(test_path),
        "test_size": len(groups),
        "champion_zero_shot_base": champion.zero_shot_base,
        "seconds": {"candidate": candidate_run.seconds, "champion": champion_run.seconds},
    }
    champion_eval = _as_evaluation(judged.champion, judged) if judged.champion else None
    return Judgement(
        judged.verdict, _as_evaluation(judged.candidate, judged), champion_eval, report, payload
    )
