"""Compressed candidates judged like any other: parity with their parent, then the champion.

Plain wiring, shared by ``conveyor convert --to onnx-int8`` and the retrain flow's compress
tasks: a stage makes the smaller version (``conversion.quantize_version``, or
``training.distil_version`` for a student) and registers it
with its lineage; :func:`flows.convert.judge_derived` judges it against its parent with the
recipe's ``compress`` tolerance (the headline metric and macro-F1 within ``max_headline_drop``,
no gain asked for) and then against the champion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from conversion import quantize_version
from conveyor.recipe import Recipe, Task
from conveyor.recipe.schema import DataFormat
from conveyor.registry import Registry
from conveyor.settings import Settings
from flows.convert import ConvertOutcome, judge_derived, parity_overrides
from training import distil_version

__all__ = ["compress_parity", "distil_and_judge", "distil_parity", "quantize_and_judge"]


def compress_parity(recipe: Recipe, max_drop: float) -> list[str]:
    """The gate overrides that make a classifier's gates a parity gate against the parent."""
    metric = recipe.compress.headline_metric or recipe.gates.headline_metric
    return [
        f"gates.headline_metric={metric}",
        f"gates.max_headline_drop={max_drop}",
        f"gates.max_macro_f1_drop={max_drop}",
        "gates.require_significant_gain=false",  # smaller, not better, is what is asked
    ]


def quantize_and_judge(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    quant: str | None = None,
    against: str = "production",
    out_dir: Path | None = None,
) -> ConvertOutcome:
    """``ref`` (a classifier) as an int8 ONNX graph, judged against ``ref`` then ``against``
    (``quant``: the recipe's ``compress.quantize.quant`` when not given)."""
    parent = registry.resolve(ref)
    recipe = Recipe.model_validate(parent.recipe)
    section = recipe.compress.quantize
    child = quantize_version(registry, settings, parent.version, quant=quant or section.quant)
    return judge_derived(
        registry,
        settings,
        child.version,
        parent.version,
        parity=compress_parity(recipe, section.max_headline_drop),
        against=against,
        out_dir=out_dir,
    )


def distil_parity(recipe: Recipe) -> list[str]:
    """The parity overrides for a student against its teacher, by the kind of gates: a
    language model's perplexity rise is held to ``compress.distil.max_perplexity_increase``,
    not to the recipe's tolerance against its champion."""
    distil = recipe.compress.distil
    if recipe.task is Task.CLASSIFICATION:
        return compress_parity(recipe, distil.max_headline_drop)
    perplexity = [f"gates.max_perplexity_increase={distil.max_perplexity_increase}"]
    if recipe.data.format is DataFormat.CHAT:
        fact_rise = recipe.convert.max_fact_error_rise
        return [*parity_overrides(distil.max_headline_drop, fact_rise), *perplexity]
    return perplexity


def distil_and_judge(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    layers: int,
    overrides: Sequence[str] = (),
    resume: bool = False,
    against: str = "production",
    out_dir: Path | None = None,
) -> ConvertOutcome:
    """A ``layers``-layer student of ``ref`` trained on its soft targets, judged against
    ``ref`` (the recipe's ``compress.distil.max_headline_drop``) and then ``against``."""
    teacher = registry.resolve(ref)
    trained = distil_version(
        registry, settings, teacher.version, layers=layers, overrides=overrides, resume=resume
    )
    assert trained.version is not None  # one process: rank 0
    student = registry.resolve(trained.version)
    return judge_derived(
        registry,
        settings,
        student.version,
        teacher.version,
        parity=distil_parity(Recipe.model_validate(student.recipe)),
        against=against,
        out_dir=out_dir,
    )
