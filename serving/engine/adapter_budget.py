"""Which loaded adapters to evict so one more fits: a pure decision over plain values.

A worker serving many deployments on one base keeps at most ``max_loaded`` adapters and at
most ``budget_bytes`` of adapter weights in memory. To load one more, it evicts the least
recently used adapters that no request holds (``leases == 0``); an adapter a request holds,
or one still loading, is never chosen. When no such set makes room, the answer is ``None``:
the caller waits for a request to end, or refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AdapterBudget", "SlotView", "adapter_bytes", "choose_evictions"]

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class AdapterBudget:
    """The bounds of one worker's adapters; ``None``: no bound."""

    max_loaded: int | None = None
    budget_bytes: int | None = None

    def check_fits(self, version: str, nbytes: int) -> None:
        """ValueError when one adapter alone is over the memory budget (it could never load)."""
        if self.budget_bytes is not None and nbytes > self.budget_bytes:
            raise ValueError(
                f"the adapter of {version} takes {nbytes / 2**20:.2f} MiB, over the adapter "
                f"memory budget of {self.budget_bytes / 2**20:.2f} MiB "
                "(CONVEYOR_ADAPTER_MEMORY_MB, --adapter-memory-mb)"
            )


@dataclass(frozen=True)
class SlotView:
    """What the decision reads of one adapter in memory (loaded, or loading)."""

    key: str
    nbytes: int
    last_used: float
    leases: int
    loading: bool = False


def choose_evictions(
    slots: Sequence[SlotView], nbytes: int, budget: AdapterBudget
) -> list[str] | None:
    """The keys to evict, least recently used first, so that one more adapter of ``nbytes``
    fits ``budget``; ``[]`` when it fits already, ``None`` when evicting every idle adapter
    would still not make room."""
    count = len(slots)
    used = sum(s.nbytes for s in slots)
    chosen: list[str] = []
    idle = sorted((s for s in slots if s.leases == 0 and not s.loading), key=lambda s: s.last_used)
    for slot in [None, *idle]:
        if slot is not None:
            chosen.append(slot.key)
            count -= 1
            used -= slot.nbytes
        over_count = budget.max_loaded is not None and count + 1 > budget.max_loaded
        over_bytes = budget.budget_bytes is not None and used + nbytes > budget.budget_bytes
        if not over_count and not over_bytes:
            return chosen
    return None


def adapter_bytes(folder: Path) -> int:
    """The bytes an adapter's weights take: its weights file (what the pool counts)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            return path.stat().st_size
    return 0
