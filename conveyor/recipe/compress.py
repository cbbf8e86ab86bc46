"""The recipe's ``compress`` section: smaller candidates made from a version that passed.

Each is a new version of the same deployment, its lineage naming its parent and method, and
judged by a parity gate against that parent (the headline metric within ``max_headline_drop``,
with its paired bootstrap interval) before the usual gate against the champion:

- ``quantize``: a classifier written again as an int8 ONNX graph (ONNX Runtime's quantizer);
- ``distil``: a student of the same family with ``layers`` layers, initialised from every
  other layer of the teacher and trained on its temperature-softened logits.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, PositiveInt

from conveyor.recipe._section import Section

__all__ = [
    "FULL_WEIGHTS_LR",
    "ONNX_QUANTS",
    "CompressSection",
    "DistilSection",
    "OnnxQuant",
    "QuantizeSection",
]

OnnxQuant = Literal["int8", "int8-per-channel"]
ONNX_QUANTS: tuple[str, ...] = get_args(OnnxQuant)
# a student of a LoRA teacher: a full-weight fine-tuning rate (the shipped MiniLM recipes' order)
FULL_WEIGHTS_LR = 5e-5
ParityMetric = Literal["accuracy", "macro_f1", "in_scope_accuracy"]


class QuantizeSection(Section):
    to: Literal["none", "onnx-int8"] = Field(
        default="none",
        description="`onnx-int8`: write a passing classifier as an int8 ONNX graph (ONNX Runtime).",
    )
    quant: OnnxQuant = Field(
        default="int8-per-channel",
        description="`int8`: one scale per weight matrix; `int8-per-channel`: one per column.",
    )
    max_headline_drop: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Parity: allowed drop of the headline metric (and macro-F1) against the "
        "parent version.",
    )


class DistilSection(Section):
    layers: PositiveInt | None = Field(
        default=None,
        description="Student layers (null: no distillation); initialised from every other "
        "layer of the teacher, fewer than the teacher has.",
    )
    temperature: float = Field(
        default=2.0, gt=0, le=100, description="Softens both models' logits for the KL term."
    )
    alpha: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Weight of the KL term on the teacher's soft targets (1 - alpha: the "
        "hard-label loss).",
    )
    lr: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="The student's peak learning rate (it trains full weights). Null: the "
        "teacher's `training.lr`, or `5e-5` when the teacher trained LoRA adapters, whose "
        "rates (1e-3 and up) would wreck full weights.",
    )
    max_headline_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Parity: allowed drop of the headline metric (and macro-F1) against the "
        "teacher.",
    )
    max_perplexity_increase: float = Field(
        default=0.3,
        ge=0,
        description="Parity for a language-model student: allowed relative rise of its "
        "perplexity of the test references over the teacher's (0.3: 30%, what halving a "
        "model's layers costs at full budget; BENCHMARKS.md). Replaces "
        "`gates.max_perplexity_increase` in the gate against the teacher.",
    )


class CompressSection(Section):
    """Optional stages of the retrain flow after the gates pass, each judged against its
    parent (parity) and the champion; the smallest candidate that passes is promoted."""

    quantize: QuantizeSection = Field(default_factory=QuantizeSection)
    distil: DistilSection = Field(default_factory=DistilSection)
    headline_metric: ParityMetric | None = Field(
        default=None,
        description="The metric the parity gates hold within tolerance (default: the gates' "
        "`headline_metric`).",
    )
