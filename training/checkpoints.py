"""Checkpoints every N steps through the DeepSpeed engine, and resuming from the latest.

A checkpoint holds the engine's state (weights, optimizer, LR schedule) plus ours:
where in the data order the run stands, early-stopping state, and every RNG, so
a resumed run replays the same batches with the same dropout masks.
A checkpoint is only written when every weight is finite ("good").

Nothing is unpickled on resume: our state and the RNG states are JSON, and every
checkpoint file is read with ``torch.load(weights_only=True)``, which admits tensors,
plain containers and the few DeepSpeed value classes named in ``_DEEPSPEED_GLOBALS``.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.errors import ResumeError

__all__ = [
    "TrainState",
    "latest_checkpoint",
    "load_checkpoint",
    "read_run_meta",
    "resume_problem",
    "save_checkpoint",
    "use_weights_only_loading",
    "weights_finite",
    "write_run_meta",
]

log = logging.getLogger(__name__)

_META = "run.json"
_TAG_PREFIX = "step-"


@dataclass
class TrainState:
    """Where the loop stands after ``step`` optimizer steps."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples: int = 0
    best_score: float | None = None
    evals_without_gain: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _rng_state() -> str:
    """Every RNG's state as JSON (no pickle in a checkpoint)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return json.dumps(state)


def _restore_rng(text: str) -> None:
    state = json.loads(text)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _deepspeed_globals() -> list[Any]:
    """Value classes DeepSpeed's ZeRO optimizer files hold (found with
    ``torch.serialization.get_unsafe_globals_in_checkpoint`` on ZeRO 1-3 checkpoints)."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def use_weights_only_loading(engine: Any) -> None:
    """Make the engine read checkpoints with ``weights_only=True`` (DeepSpeed's own does not)."""
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    if type(engine.checkpoint_engine) is not TorchCheckpointEngine:
        raise ResumeError(
            f"unexpected DeepSpeed checkpoint engine {type(engine.checkpoint_engine).__name__}: "
            "conveyor only loads checkpoints with weights_only"
        )
    allowed = _deepspeed_globals()

    def load(path: str, map_location: Any = None) -> Any:
        with torch.serialization.safe_globals(allowed):
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except pickle.UnpicklingError as exc:
                raise ResumeError(
                    f"--resume: {path} holds more than weights and plain values, refused "
                    f"({str(exc).splitlines()[0]}); run without --resume"
                ) from exc

    engine.checkpoint_engine.load = load


def weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def write_run_meta(directory: Path, meta: dict[str, Any]) -> None:
    """What the checkpoints belong to (data fingerprint, recipe), checked on resume."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def read_run_meta(directory: Path) -> dict[str, Any]:
    path = directory / _META
    if not path.is_file():
        raise ResumeError(f"--resume: no checkpoints in {directory}; run without --resume")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def resume_problem(directory: Path, fingerprint: str, recipe: dict[str, Any]) -> str | None:
    """Why the checkpoints in ``directory`` cannot continue this run (None: they can).

    They can when they were written for the same data and the same resolved recipe and
    a complete checkpoint exists.
    """
    path = directory / _META
    if not path.is_file():
        return f"no checkpoints in {directory}"
    meta = json.loads(path.read_text())
    if meta.get("data_fingerprint") != fingerprint:
        return f"the data changed since the checkpoints in {directory} were written"
    if meta.get("recipe") != recipe:
        return f"the recipe changed since the checkpoints in {directory} were written"
    if latest_checkpoint(directory) is None:
        return f"no complete checkpoint in {directory}"
    return None


def latest_checkpoint(directory: Path) -> Path | None:
    """The tag DeepSpeed's ``latest`` file names (written last, so never half a checkpoint).
    DeepSpeed rewrites it in place: a run killed between truncate and write leaves it empty,
    which names no checkpoint (not the folder itself)."""
    pointer = directory / "latest"
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    tag = directory / name
    return tag if name and tag.is_dir() else None


def _prune(directory: Path, keep: int) -> None:
    tags = sorted(p for p in directory.glob(f"{_TAG_PREFIX}*") if p.is_dir())
    for old in tags[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _frozen(engine: Any) -> bool:
    return any(not p.requires_grad for p in engine.module.parameters())


def save_checkpoint(engine: Any, directory: Path, state: TrainState, keep: int = 2) -> Path:
    """Save through the engine (every rank must call this), keep the newest ``keep``."""
    tag = f"{_TAG_PREFIX}{state.step:08d}"
    client = {"conveyor": asdict(state), "rng": _rng_state()}
    # Frozen weights (the base under LoRA adapters) never change: they are not saved again.
    engine.save_checkpoint(
        str(directory), tag=tag, client_state=client, exclude_frozen_parameters=_frozen(engine)
    )
    if engine.global_rank == 0:
        _prune(directory, keep)
    log.info("checkpoint saved: %s", directory / tag)
    return directory / tag


def load_checkpoint(engine: Any, directory: Path) -> tuple[TrainState, Path]:
    """Load the latest checkpoint into the engine; restore RNG; return our state."""
    tag = latest_checkpoint(directory)
    if tag is None:
        raise ResumeError(f"--resume: no complete checkpoint in {directory}; run without --resume")
    use_weights_only_loading(engine)
    frozen = _frozen(engine)
    path, client = engine.load_checkpoint(
        str(directory), tag=tag.name, load_module_strict=not frozen
    )
    if path is None or client is None or "conveyor" not in client:
        raise ResumeError(f"--resume: {tag} could not be loaded; run without --resume")
    _restore_rng(client["rng"])
    state = TrainState(**client["conveyor"])
    log.info("resumed from %s (step %d, epoch %d)", tag, state.step, state.epoch + 1)
    return state, tag
