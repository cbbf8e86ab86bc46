"""What can go wrong in training that the user can fix; each prints as one line in the CLI."""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import ConveyorError, ExitCode

__all__ = [
    "BaseModelError",
    "LabelMismatchError",
    "NonFiniteLossError",
    "OutOfMemoryError",
    "ResumeError",
    "TrainingError",
]


class TrainingError(ConveyorError):
    """Training cannot start or cannot go on."""

    exit_code = ExitCode.TRAINING_FAILED


class BaseModelError(TrainingError):
    """``model.base`` is not a model this task can fine-tune."""

    def __init__(self, base: str, reason: str) -> None:
        super().__init__(f"model.base: {base}: {reason}")


class LabelMismatchError(TrainingError):
    """The labels of the data and those of the model (or another split) disagree."""


class ResumeError(TrainingError):
    """``--resume`` asked for, but there is nothing (compatible) to resume from."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, value: float, step: int, checkpoint: Path | None) -> None:
        self.value = value
        self.step = step
        self.checkpoint = checkpoint
        kept = (
            f"last good checkpoint kept at {checkpoint} (--resume continues from it)"
            if checkpoint
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"loss became {value} at step {step}: lower training.lr or training.weight_decay, "
            f"keep training.max_grad_norm set, avoid fp16; {kept}"
        )


class OutOfMemoryError(TrainingError):
    """The accelerator ran out of memory; says which knob to turn."""

    def __init__(self, batch_size: int, max_length: int, zero_stage: int) -> None:
        hints = [
            f"lower training.batch_size (now {batch_size}) and raise "
            "training.gradient_accumulation_steps to keep the effective batch",
            f"lower model.max_length (now {max_length})",
        ]
        if zero_stage < 3:
            hints.append(f"raise training.zero_stage (now {zero_stage}) to shard more state")
        super().__init__("out of accelerator memory: " + "; or ".join(hints))
