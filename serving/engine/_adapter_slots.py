"""The pieces of an adapter pool's bookkeeping: a version's slot, what the pool tells the
worker's metrics, the refusal when a cold adapter cannot load in time, and two peft/glibc
chores after an adapter is deleted."""

from __future__ import annotations

import ctypes
import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from serving.engine.adapter_budget import SlotView
from serving.refusal import Unavailable

__all__ = ["AdapterBusy", "AdapterEvents", "Slot", "keep_active", "trim_heap"]


class AdapterBusy(Unavailable):
    """A request's adapter is not loaded and could not be within the wait: retry shortly."""


class AdapterEvents(Protocol):
    """What a pool tells its worker's metrics (per version's deployment)."""

    def loaded(self, version: str, seconds: float) -> None: ...
    def evicted(self, version: str) -> None: ...
    def waited(self, version: str, seconds: float) -> None: ...
    def holding(self, adapters: int, nbytes: int) -> None: ...


@dataclass
class Slot:
    """One version's adapter: where it is (``name`` in the peft model, None when evicted)."""

    key: str
    version: str
    base: str
    folder: Path
    nbytes: int
    name: str | None = None
    last_used: float = field(default_factory=time.monotonic)
    leases: int = 0
    loading: bool = False
    error: str | None = None

    def view(self) -> SlotView:
        return SlotView(self.key, self.nbytes, self.last_used, self.leases, self.loading)


def keep_active(model: Any) -> None:
    """Point the peft model's active adapter at one it holds: peft leaves it naming a deleted
    adapter once the last one goes, and every forward then fails on it. (Requests name their
    own adapter per row; the active one only has to exist.)"""
    held = list(getattr(model, "peft_config", {}) or ())
    if held and model.active_adapter not in held:
        model.set_adapter(held[0], inference_mode=True)


def trim_heap() -> None:
    """Hand freed memory back to the system (glibc keeps freed tensors' pages otherwise)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc
            pass
