"""The DeepSpeed engine: process setup, the config we hand it, optimizer and LR schedule.

Choices measured in ../shared/STACK.md: a torch optimizer is passed in (a config
optimizer JIT-builds a CPU Adam for ~110 s); bf16 runs as ``torch_autocast`` (0.81x of
plain eager on an H100 against 0.66-0.71x for DeepSpeed's ``bf16`` mode).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import MutableMapping
from typing import Any

import torch

__all__ = [
    "clip_in_loop",
    "build_optimizer",
    "build_scheduler",
    "deepspeed_config",
    "ensure_distributed_env",
    "initialize",
    "merge_config",
    "resolve_precision",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        "MASTER_PORT": str(_free_port()),
    }
    changed = {k: v for k, v in wanted.items() if k not in env}
    env.update(changed)
    return changed


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """``auto``: bf16 on a GPU that has it, else fp32 (CPU autocast is slower here)."""
    if precision != "auto":
        return precision
    if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def clip_in_loop(zero_stage: int, precision: str) -> bool:
    """Whether the loop may clip with torch's foreach kernel instead of the engine.

    Only where gradients are whole and unscaled at the step: ZeRO 0 (not partitioned)
    and no fp16 loss scaling. The engine's own clip norms parameters one by one
    (~5% of a tiny-model CPU step, profiled).
    """
    return zero_stage == 0 and precision != "fp16"


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


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW, no decay on biases and norms; fused kernels on GPU, foreach on CPU."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        (no_decay if plain else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
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


def initialize(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: dict[str, Any],
) -> Any:
    """``deepspeed.initialize`` with our optimizer and schedule; returns the engine."""
    import deepspeed

    ensure_distributed_env()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
    )
    if engine.world_size == 1 and config["zero_optimization"]["stage"] == 0:
        # One process has nothing to reduce; the engine would still flatten, all-reduce
        # and copy back every gradient each step (~5% of a tiny-model CPU step, profiled).
        engine.enable_backward_allreduce = False
    return engine
