"""The DeepSpeed engine: process setup, the config we hand it, optimizer and LR schedule.

Choices measured in ../shared/STACK.md: a torch optimizer is passed in (a config
optimizer JIT-builds a CPU Adam for ~110 s); bf16 runs as ``torch_autocast`` (0.81x of
plain eager on an H100 against 0.66-0.71x for DeepSpeed's ``bf16`` mode).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Callable, MutableMapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch

from conveyor.ports import free_port
from conveyor.progress import waiting
from training.build_locks import clear_stale_build_locks
from training.errors import TrainingError

log = logging.getLogger("training")
P = ParamSpec("P")
R = TypeVar("R")
# deepspeed_shm_comm is compiled with g++ on a machine's first start (74 s measured, STACK.md),
# then loaded from TORCH_EXTENSIONS_DIR in ~2 s.
ENGINE_START_SECONDS = 80.0
PORT_ATTEMPTS = 3
ENGINE_START = "starting the DeepSpeed engine (the first start on a machine compiles its C++ ops)"

__all__ = [
    "build_optimizer",
    "is_head",
    "build_scheduler",
    "deepspeed_config",
    "ensure_distributed_env",
    "init_process_group",
    "own_rank_environment",
    "initialize",
    "merge_config",
    "move_clipping_to_loop",
    "read_config_file",
    "resolve_precision",
]


def ensure_distributed_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """One process outside the launcher still needs RANK etc. (else DeepSpeed tries mpi4py)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return {}
    wanted = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    changed = {k: v for k, v in wanted.items() if k not in env}
    env.update(changed)
    return changed


def own_rank_environment(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` with :func:`ensure_distributed_env`'s variables, then take back the ones
    it set. They are only read when the process group starts; left behind, every child this
    process starts later (a flow run, a `conveyor` command, a server) inherits a rank and a
    rendezvous port this process's store already holds."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        changed = ensure_distributed_env()
        try:
            return func(*args, **kwargs)
        finally:
            for key in changed:
                os.environ.pop(key, None)

    return run


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """``auto``: bf16 on a GPU that has it, else fp32 (CPU autocast is slower here)."""
    if precision != "auto":
        return precision
    if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def move_clipping_to_loop(config: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """Take gradient clipping out of the engine where the loop can do it faster.

    Only where gradients are whole and unscaled at the step: ZeRO 0 (not partitioned)
    and no fp16 loss scaling. The engine's own clip norms parameters one by one
    (~5% of a tiny-model CPU step, profiled); torch's foreach kernel does not.
    Returns the config to use and the norm the loop should clip to (None: engine clips).
    """
    stage = config.get("zero_optimization", {}).get("stage", 0)
    fp16 = config.get("fp16", {}).get("enabled", False)
    norm = float(config.get("gradient_clipping") or 0.0)
    if stage != 0 or fp16 or norm <= 0:
        return config, None
    return {**config, "gradient_clipping": 0.0}, norm


def read_config_file(path: Path) -> dict[str, Any]:
    """An ``infra/deepspeed/*.json`` file, or TrainingError saying what is wrong with it."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingError(f"--ds-config: no such file: {path}") from exc
    except (OSError, ValueError) as exc:
        raise TrainingError(f"--ds-config: {path} is not valid JSON ({exc})") from exc
    if not isinstance(loaded, dict):
        raise TrainingError(f"--ds-config: {path} must hold a JSON object")
    if "optimizer" in loaded:
        raise TrainingError(f"--ds-config: {path}: drop 'optimizer', conveyor passes AdamW")
    return loaded


def merge_config(ours: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge; ``extra`` (the recipe's ``training.deepspeed``) wins."""
    merged = dict(ours)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def deepspeed_config(
    *,
    micro_batch_size: int,
    gradient_accumulation_steps: int,
    world_size: int,
    zero_stage: int,
    precision: str,
    max_grad_norm: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The DeepSpeed config for one run; never names an optimizer (see module doc)."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "train_batch_size": micro_batch_size * gradient_accumulation_steps * world_size,
        "zero_optimization": {"stage": zero_stage},
        "gradient_clipping": max_grad_norm or 0.0,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    if precision == "bf16":
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    elif precision == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
    if "optimizer" in (extra or {}):
        raise ValueError("training.deepspeed.optimizer: not supported, conveyor passes AdamW")
    return merge_config(config, extra or {})


HEAD_PREFIXES = ("classifier.", "score.")
HEAD_PARTS = (".pooler.", "pooler.")


def is_head(name: str) -> bool:
    """The freshly initialised classification head (and the encoder's pooler)."""
    return name.startswith(HEAD_PREFIXES) or any(part in name for part in HEAD_PARTS)


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, head_lr_multiplier: float = 1.0
) -> torch.optim.Optimizer:
    """AdamW, no decay on biases and norms; fused kernels on GPU, foreach on CPU.

    ``head_lr_multiplier`` gives the new head its own, larger learning rate: a random
    151-way head on a pretrained encoder otherwise needs epochs to catch up (measured on
    CLINC150 with MiniLM: validation accuracy 0.85 after 150 steps at x50).
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    head: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if head_lr_multiplier != 1.0 and is_head(name):
            head.append(param)
            continue
        plain = param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        (no_decay if plain else decay).append(param)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if head:
        groups.append({"params": head, "weight_decay": 0.0, "lr": lr * head_lr_multiplier})
    # An empty group (LoRA trains no norms or biases) is dropped by DeepSpeed's wrapper, which
    # would leave the LR schedule with one factor per group too many.
    groups = [group for group in groups if group["params"]]
    on_gpu = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=lr, fused=on_gpu or None, foreach=None if on_gpu else True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_process_group(backend: str, attempts: int = PORT_ATTEMPTS) -> None:
    """DeepSpeed's process group. One process alone picks its own rendezvous port
    (:func:`ensure_distributed_env`), free when picked; another process can bind it before
    the store does (seen in CI: EADDRINUSE), and then a new port is picked. Ports the
    launcher gave several processes are theirs to agree on: never changed."""
    import deepspeed

    for attempt in range(1, attempts + 1):
        try:
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
            return
        except torch.distributed.DistNetworkError as exc:
            alone = os.environ.get("WORLD_SIZE") == "1"
            if not alone or "EADDRINUSE" not in str(exc) or attempt == attempts:
                raise
            taken, port = os.environ.get("MASTER_PORT"), free_port()
            log.warning("rendezvous port %s was taken before it was bound; using %d", taken, port)
            os.environ["MASTER_PORT"] = str(port)


def initialize(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: dict[str, Any],
) -> Any:
    """``deepspeed.initialize`` with our optimizer and schedule; returns the engine."""
    import deepspeed

    ensure_distributed_env()
    clear_stale_build_locks()  # else a build killed earlier makes this start wait forever
    head = os.environ.get("RANK", "0") == "0"  # rank zero speaks for all
    with waiting(log, ENGINE_START, ENGINE_START_SECONDS) if head else nullcontext():
        if not torch.distributed.is_initialized():
            init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
        )
    if engine.world_size == 1 and config.get("zero_optimization", {}).get("stage", 0) == 0:
        # One process has nothing to reduce; the engine would still flatten, all-reduce
        # and copy back every gradient each step (~5% of a tiny-model CPU step, profiled).
        engine.enable_backward_allreduce = False
    return engine
