"""LoRA adapters with peft: wrap a causal LM, save the adapter alone, load it on its base.

Only the adapter matrices are trainable after :func:`wrap_with_lora`; :func:`trainable`
lists them for the optimizer. :func:`save_adapter` writes peft's own small folder
(``adapter_config.json`` and ``adapter_model.safetensors``, megabytes, not the base);
:func:`load_adapter` puts it back on a freshly loaded base model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import BaseModelError

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "LoraSettings",
    "load_adapter",
    "parameter_counts",
    "save_adapter",
    "trainable",
    "wrap_with_lora",
]

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class LoraSettings:
    """The recipe's ``training.lora`` as plain values."""

    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


def _module_names(model: Any) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}


def wrap_with_lora(model: Any, settings: LoraSettings, base: str = "model.base") -> Any:
    """``model`` with LoRA adapters on ``settings.target_modules``; the base is frozen."""
    from peft import LoraConfig, TaskType, get_peft_model

    present = _module_names(model)
    missing = [name for name in settings.target_modules if name not in present]
    if missing:
        raise BaseModelError(
            base,
            f"training.lora.target_modules {missing} are not modules of this model "
            f"(linear layers it has include: {sorted(_linear_names(model))[:12]})",
        )
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
    )
    wrapped = get_peft_model(model, config)
    counts = parameter_counts(wrapped)
    log.info(
        "LoRA r=%d on %s: %s of %s parameters trainable",
        settings.r,
        ",".join(settings.target_modules),
        f"{counts[0]:,}",
        f"{counts[1]:,}",
    )
    return wrapped


def _linear_names(model: Any) -> set[str]:
    import torch

    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


def trainable(model: Any) -> list[Any]:
    """The parameters the optimizer should get: those that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in trainable(model)), total


def save_adapter(model: Any, folder: Path) -> list[Path]:
    """Write only the adapter (peft's format, safetensors) into ``folder``; return its files."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    return sorted(p for p in folder.iterdir() if p.name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS))


def load_adapter(base_model: Any, folder: Path, *, trainable_adapter: bool = False) -> Any:
    """The base model with the adapter saved in ``folder`` on top (for inference by default)."""
    from peft import PeftModel

    if not (folder / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"{folder}: no {ADAPTER_CONFIG} (not a LoRA adapter folder)")
    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable_adapter)
