"""Distillation: a smaller student of the teacher's own family, trained on its soft targets.

:func:`student_from` copies the teacher and keeps every other layer (as DistilBERT does:
layers 0, 2, 4 of a 6-layer MiniLM; 0, 2, ..., 28 of SmolLM2's 30), embeddings, final norm
and head included, so the student starts where the teacher is. :class:`Distiller` is what
the DeepSpeed engine trains: its forward returns ``alpha`` x KL(teacher || student) on
logits softened by ``temperature`` (scaled by T², Hinton et al.) plus ``1 - alpha`` x the
student's own hard-label loss. For a language model both terms count only the tokens that
carry a label (the assistant's, in chat data). The teacher is frozen and kept out of the
module tree, so checkpoints and the optimizer hold the student alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch.nn import functional as F

from conveyor.errors import ExitCode
from training.errors import TrainingError

__all__ = [
    "DistilSettings",
    "DistillationError",
    "Distiller",
    "Teacher",
    "check_vocabularies",
    "every_other_layer",
    "student_from",
]

IGNORE = -100  # labels the loss skips (prompt tokens, padding)


class DistillationError(TrainingError):
    """A student that cannot be distilled from this teacher (bad input)."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class DistilSettings:
    layers: int
    temperature: float
    alpha: float


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher version: what :func:`training.fine_tune` builds the student from."""

    version: str
    model: Any
    label_names: tuple[str, ...] | None
    settings: DistilSettings


def _layers(model: Any) -> tuple[Any, str]:
    """The module holding the model's list of layers, and the list's attribute name."""
    for path, attr in (("bert.encoder", "layer"), ("model", "layers"), ("transformer", "h")):
        owner = model
        for part in path.split("."):
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is not None and isinstance(getattr(owner, attr, None), torch.nn.ModuleList):
            return owner, attr
    raise DistillationError(
        f"cannot distil a {type(model).__name__}: no BERT, Llama or GPT-2 layer list found"
    )


def every_other_layer(teacher_layers: int, student_layers: int) -> list[int]:
    """Which teacher layers the student keeps: evenly spread, starting at the first."""
    if student_layers >= teacher_layers:
        raise DistillationError(
            f"--student layers={student_layers}: a student must be smaller than its teacher "
            f"({teacher_layers} layers)"
        )
    return [i * teacher_layers // student_layers for i in range(student_layers)]


def student_from(teacher: Any, layers: int) -> Any:
    """A copy of ``teacher`` with ``layers`` of its layers (:func:`every_other_layer`)."""
    owner, attr = _layers(teacher)
    teacher_layers = len(getattr(owner, attr))
    kept = every_other_layer(teacher_layers, layers)
    student = copy.deepcopy(teacher)
    owner, attr = _layers(student)
    chosen = [getattr(owner, attr)[i] for i in kept]
    for index, layer in enumerate(chosen):  # a KV cache finds a layer by its index
        attention = getattr(layer, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = index
    setattr(owner, attr, torch.nn.ModuleList(chosen))
    config = student.config
    for name in ("num_hidden_layers", "n_layer"):
        if hasattr(config, name):
            setattr(config, name, layers)
    types = getattr(config, "layer_types", None)
    if isinstance(types, list) and len(types) == teacher_layers:
        config.layer_types = [types[i] for i in kept]
    for param in student.parameters():
        param.requires_grad_(True)
    return student


def _vocabulary(tokenizer: Any) -> tuple[int, int]:
    vocab = tokenizer.get_vocab()
    return len(vocab), hash(tuple(sorted(vocab.items())))


def check_vocabularies(teacher: Any, teacher_name: str, student: Any, student_name: str) -> None:
    """DistillationError naming both vocabularies unless the two tokenizers are the same:
    logits are compared token by token, so token ids must mean the same text."""
    ours, theirs = _vocabulary(student), _vocabulary(teacher)
    if ours != theirs:
        raise DistillationError(
            f"the student's tokenizer ({student_name}: {ours[0]:,} tokens) is not the "
            f"teacher's ({teacher_name}: {theirs[0]:,} tokens): logit distillation needs one "
            "vocabulary"
        )


def _soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) per row on softened logits, times T² (rows x classes in)."""
    t = temperature
    log_student = F.log_softmax(student.float() / t, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / t, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * t * t


class Distiller(torch.nn.Module):
    """The student, trained on the frozen teacher's soft targets plus the hard labels.

    Called like the student (``engine(**batch)``): in training its ``loss`` is the
    distillation loss; in evaluation it is the student's own, so validation figures are
    the student's. ``save_pretrained`` and ``config`` are the student's.
    """

    def __init__(self, student: Any, teacher: Any, settings: DistilSettings) -> None:
        super().__init__()
        self.student = student
        self.settings = settings
        teacher.eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: never saved or trained

    @property
    def teacher(self) -> Any:
        return self.__dict__["_teacher"]

    @property
    def config(self) -> Any:
        return self.student.config

    def save_pretrained(self, *args: Any, **kwargs: Any) -> None:
        self.student.save_pretrained(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> Distiller:
        self.teacher.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def forward(self, **batch: Any) -> Any:
        out = self.student(**batch)
        if not self.training or "labels" not in batch:
            return out
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            teacher_logits = self.teacher(**inputs).logits
        s = self.settings
        soft = self._soft(out.logits, teacher_logits, batch["labels"], s.temperature)
        loss = s.alpha * soft + (1 - s.alpha) * out.loss
        return SimpleNamespace(loss=loss, logits=out.logits)

    @staticmethod
    def _soft(
        student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        if student.dim() == 2:  # a classifier: one row per text
            return _soft_loss(student, teacher, temperature)
        kept = labels[:, 1:] != IGNORE  # a token's logits predict the next token's label
        return _soft_loss(student[:, :-1][kept], teacher[:, :-1][kept], temperature)
