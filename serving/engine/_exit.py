"""Decode threads stop before the interpreter exits.

A decode thread still inside a torch step while the process finalizes aborts it ("terminate
called without an active exception", SIGABRT), so a command that had finished its work (a
``conveyor promote`` of a LoRA version, a benchmark) was read as failed. Every engine is
closed, its thread joined, at exit.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Protocol

__all__ = ["close_at_exit"]


class _Closable(Protocol):
    def close(self) -> None: ...


_LIVE: weakref.WeakSet[_Closable] = weakref.WeakSet()


def close_at_exit(engine: _Closable) -> None:
    """Close ``engine`` (and join its thread) when the interpreter exits, if still open."""
    _LIVE.add(engine)


@atexit.register
def _close_live_engines() -> None:
    for engine in list(_LIVE):
        engine.close()
