"""The step loop on the DeepSpeed engine: forward, backward, step; eval, checkpoint, stop.

Kept lean on purpose (the engine does accumulation, clipping, the LR schedule and
mixed precision): one host sync per optimizer step, for the loss that the NaN
check, the progress bar and the logs need.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.checkpoints import TrainState, save_checkpoint, weights_finite
from training.data import Encoded, collate, epoch_batches
from training.errors import NonFiniteLossError, OutOfMemoryError, TrainingError
from training.metrics import evaluate
from training.progress import Progress

__all__ = ["FitResult", "LoopSettings", "fit"]


EVAL_BATCH_SIZE = 128
# fp32 logits of one evaluation batch (rows x tokens x vocabulary x 4 bytes) stay under this:
# a causal LM's 49k-token vocabulary at 320 tokens and 128 rows would be 8 GB, twice over in
# the loss (a validation pass of CrossWOZ at that size was killed for memory).
EVAL_LOGITS_BYTES = 1 << 30


def eval_batch_size(max_length: int, vocab_size: int | None) -> int:
    """Rows per evaluation batch: 128, fewer when a language model's logits would not fit."""
    if not vocab_size or max_length <= 0:
        return EVAL_BATCH_SIZE
    return max(1, min(EVAL_BATCH_SIZE, EVAL_LOGITS_BYTES // (max_length * vocab_size * 4)))


@dataclass(frozen=True)
class LoopSettings:
    total_steps: int
    batch_size: int
    seed: int
    checkpoint_every: int
    checkpoint_dir: Path | None
    eval_every: int | None = None
    patience: int | None = None
    eval_batch_size: int = EVAL_BATCH_SIZE
    bucket: bool = True
    max_length: int = 0
    zero_stage: int = 0
    show_progress: bool = True
    clip_grad_norm: float | None = None  # clip here (foreach) instead of in the engine
    # Read the mean loss back from the device every N optimizer steps (and at every evaluation,
    # checkpoint and the last step): each read waits for the device, so on a GPU a read every
    # step keeps the CPU from queueing the next step while this one runs. The loss shown and the
    # non-finite check cover the steps since the last read.
    loss_every: int = 1


@dataclass(frozen=True)
class FitResult:
    state: TrainState
    metrics: dict[str, float]
    train_loss: float
    seconds: float
    samples_per_second: float
    stopped_early: bool


def _score(metrics: dict[str, float]) -> float:
    """Higher is better: accuracy for classifiers, minus loss for language models."""
    return metrics["accuracy"] if "accuracy" in metrics else -metrics["loss"]


def _rank_batches(
    lengths: list[int], cfg: LoopSettings, epoch: int, rank: int, world: int
) -> list[list[int]]:
    """This rank's micro-batches: its share of each global batch of ``batch_size x world``.

    The data order depends on the global batch only, so 2 processes x batch 4 see, step
    for step, the examples 1 process x batch 8 sees (and a resume replays them).
    """
    batches = epoch_batches(lengths, cfg.batch_size * world, cfg.seed, epoch, cfg.bucket)
    if world == 1:
        return batches
    return [batch[rank::world] for batch in batches if len(batch) >= world]


def _mean_loss(running: torch.Tensor, count: int, world: int) -> float:
    value = running / max(1, count)
    if world > 1:
        torch.distributed.all_reduce(value)
        value = value / world
    return float(value)


def _validate(engine: Any, data: Encoded, pad_id: int, cfg: LoopSettings) -> dict[str, float]:
    return evaluate(
        engine, data, batch_size=cfg.eval_batch_size, pad_id=pad_id, device=engine.device
    )


def _final_metrics(state: TrainState) -> dict[str, float] | None:
    """The validation already run at the last step (the weights have not changed since):
    the same numbers, without a second pass over the validation split."""
    if not state.history or state.history[-1]["step"] != state.step:
        return None
    return {k: v for k, v in state.history[-1].items() if k not in ("step", "train_loss")}


def _after_eval(
    state: TrainState, metrics: dict[str, float], cfg: LoopSettings, train_loss: float
) -> bool:
    """Record an evaluation (and the step's training loss); True when early stopping says stop."""
    state.history.append({"step": float(state.step), **metrics, "train_loss": train_loss})
    score = _score(metrics)
    if state.best_score is None or score > state.best_score:
        state.best_score, state.evals_without_gain = score, 0
    else:
        state.evals_without_gain += 1
    return cfg.patience is not None and state.evals_without_gain >= cfg.patience


def fit(
    engine: Any,
    train: Encoded,
    validation: Encoded,
    *,
    pad_id: int,
    cfg: LoopSettings,
    state: TrainState,
    last_checkpoint: Path | None = None,
) -> FitResult:
    """Train until ``cfg.total_steps`` optimizer steps (or early stopping); evaluate at the end."""
    rank, world = engine.global_rank, engine.world_size
    lengths = train.lengths
    progress = Progress(cfg.total_steps, state.step, cfg.show_progress and rank == 0)
    running = torch.zeros((), device=engine.device)
    params = [p for p in engine.module.parameters() if p.requires_grad]
    micro, step_samples, train_loss, stop = 0, 0, math.nan, False
    started, start_samples = time.perf_counter(), state.samples
    engine.train()
    try:
        while state.step < cfg.total_steps and not stop:
            batches = _rank_batches(lengths, cfg, state.epoch, rank, world)
            if not batches:
                raise TrainingError(f"data.train: too few examples for {world} processes")
            for indices in batches[state.batch_in_epoch :]:
                batch = collate(train, indices, pad_id)
                batch = {k: v.to(engine.device, non_blocking=True) for k, v in batch.items()}
                loss = engine(**batch).loss
                engine.backward(loss)
                if cfg.clip_grad_norm and engine.is_gradient_accumulation_boundary():
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm, foreach=True)
                engine.step()
                running += loss.detach()
                micro += 1
                step_samples += len(indices) * world
                state.batch_in_epoch += 1
                if engine.global_steps == state.step:
                    continue  # still accumulating
                state.step = engine.global_steps
                state.samples += step_samples
                evaluating = bool(cfg.eval_every and state.step % cfg.eval_every == 0)
                saving = bool(cfg.checkpoint_dir and state.step % cfg.checkpoint_every == 0)
                if (
                    state.step % cfg.loss_every == 0
                    or evaluating
                    or saving
                    or state.step >= cfg.total_steps
                ):  # a read waits for the device to finish the step: not every step on a GPU
                    train_loss = _mean_loss(running, micro, world)
                    if not math.isfinite(train_loss):
                        raise NonFiniteLossError(train_loss, state.step, last_checkpoint)
                    running.zero_()
                    micro = 0
                epoch = state.epoch + state.batch_in_epoch / max(1, len(batches))
                lr = float(engine.get_lr()[0])
                progress.update(state.step, epoch, train_loss, lr, step_samples)
                step_samples = 0
                if evaluating:
                    metrics = _validate(engine, validation, pad_id, cfg)
                    progress.note("step %d validation: %s", state.step, _fmt(metrics))
                    stop = _after_eval(state, metrics, cfg, train_loss)
                done = stop or state.step >= cfg.total_steps
                if saving and not done and cfg.checkpoint_dir is not None:
                    if not weights_finite(engine.module):
                        raise NonFiniteLossError(math.nan, state.step, last_checkpoint)
                    last_checkpoint = save_checkpoint(engine, cfg.checkpoint_dir, state)
                if done:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
    except torch.OutOfMemoryError as exc:
        raise OutOfMemoryError(cfg.batch_size, cfg.max_length, cfg.zero_stage) from exc
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    final = _final_metrics(state)
    if final is None:  # the last step was not an evaluation step
        final = _validate(engine, validation, pad_id, cfg)
        state.history.append({"step": float(state.step), **final, "train_loss": train_loss})
    progress.note("final validation: %s", _fmt(final))
    return FitResult(
        state=state,
        metrics=final,
        train_loss=train_loss,
        seconds=seconds,
        samples_per_second=(state.samples - start_samples) / seconds if seconds > 0 else 0.0,
        stopped_early=stop,
    )


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
