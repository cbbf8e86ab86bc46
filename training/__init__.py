"""Fine-tuning on the DeepSpeed engine: data, model, loop, checkpoints, model folder.

``run(recipe, settings, launch=LaunchSpec(...))`` is the stage's entry point: in this
process or through the DeepSpeed launcher, it fine-tunes, writes the model folder and
registers the version. ``evaluate`` scores a model on encoded data. Nothing here talks
to Prefect or BentoML.
"""

from training.checkpoints import TrainState
from training.data import Encoded, LabelMap, collate, epoch_batches
from training.dispatch import run, spec_for
from training.errors import (
    BaseModelError,
    LabelMismatchError,
    NonFiniteLossError,
    OutOfMemoryError,
    ResumeError,
    TrainingError,
)
from training.fine_tune import TrainResult, checkpoint_dir, fine_tune, prepare, resumable
from training.launch import LaunchSpec
from training.metrics import accuracy, evaluate, macro_f1, predict

__all__ = [
    "BaseModelError",
    "Encoded",
    "LabelMap",
    "LabelMismatchError",
    "LaunchSpec",
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
    "resumable",
    "run",
    "spec_for",
]
