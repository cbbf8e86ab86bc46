"""Fine-tuning on the DeepSpeed engine: data, model, loop, checkpoints, model folder.

``fine_tune(recipe, settings)`` is the stage's entry point; ``evaluate`` scores a model
on encoded data. Nothing here talks to Prefect or BentoML.
"""

from training.checkpoints import TrainState
from training.data import Encoded, LabelMap, collate, epoch_batches
from training.errors import (
    BaseModelError,
    LabelMismatchError,
    NonFiniteLossError,
    OutOfMemoryError,
    ResumeError,
    TrainingError,
)
from training.fine_tune import TrainResult, checkpoint_dir, fine_tune, prepare
from training.metrics import accuracy, evaluate, macro_f1, predict

__all__ = [
    "BaseModelError",
    "Encoded",
    "LabelMap",
    "LabelMismatchError",
    "NonFiniteLossError",
    "OutOfMemoryError",
    "ResumeError",
    "TrainResult",
    "TrainState",
    "TrainingError",
    "accuracy",
    "checkpoint_dir",
    "collate",
    "epoch_batches",
    "evaluate",
    "fine_tune",
    "macro_f1",
    "predict",
    "prepare",
]
