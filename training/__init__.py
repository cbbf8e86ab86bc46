"""Fine-tuning on the DeepSpeed engine: data, model, loop, checkpoints, model folder.

``run(recipe, settings, launch=LaunchSpec(...))`` is the stage's entry point: in this
process or through the DeepSpeed launcher, it fine-tunes, writes the model folder and
registers the version. ``evaluate`` scores a model on encoded data; ``distil_version``
trains a smaller student of a registered version on its soft targets. Nothing here talks
to Prefect or BentoML.
"""

from training.checkpoints import TrainState
from training.data import Encoded, LabelMap, collate, epoch_batches
from training.dispatch import run, spec_for
from training.distil import DistillationError
from training.distil_version import distil_version, parse_student
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
    "DistillationError",
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
    "distil_version",
    "epoch_batches",
    "parse_student",
    "evaluate",
    "fine_tune",
    "macro_f1",
    "predict",
    "prepare",
    "resumable",
    "run",
    "spec_for",
]
