"""Progress a person can read in a log: what is happening, how far along, how long it has taken
and how long it should still take.

Shared by every stage that works for minutes (training steps, the DeepSpeed engine start,
evaluation batches); each logs through its own logger. Pure wording in :func:`eta_text`,
a ticking log of batches in :class:`Ticker`, a heartbeat for one long call in :func:`waiting`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Ticker", "duration", "eta_text", "waiting"]


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a span a person reads at a glance."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def eta_text(done: int, total: int, elapsed: float, *, since: int = 0) -> str:
    """``12/40 (30%), 6 s elapsed, ETA 14 s`` from the pace so far (no ETA before the first).

    ``since``: where this process started counting (a resumed run took ``done - since`` of
    them in ``elapsed``)."""
    share = f" ({done / total:.0%})" if total > 0 else ""
    head = f"{done}/{total}{share}, {duration(elapsed)} elapsed"
    taken = done - since
    if taken <= 0 or total <= 0:
        return head
    left = max(0.0, elapsed / taken * (total - done))
    return f"{head}, ETA {duration(left)}"


class Ticker:
    """Logs ``what: done/total, elapsed, ETA`` at most every ``every`` seconds, and at the end."""

    def __init__(self, log: logging.Logger, what: str, total: int, *, every: float = 10.0) -> None:
        self.log, self.what, self.total, self.every = log, what, total, every
        self.done = 0
        self._start = time.monotonic()
        self._last = self._start

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= self.every:
            self._last = now
            self.log.info("%s: %s", self.what, eta_text(self.done, self.total, now - self._start))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start


@contextmanager
def waiting(
    log: logging.Logger, what: str, expected: float, *, every: float = 15.0
) -> Iterator[None]:
    """One long call that reports nothing itself: say it started, log every ``every`` seconds
    how long it has taken and about how long it should still take (from ``expected``, a
    measured typical duration), then how long it took."""
    start = time.monotonic()
    stop = threading.Event()
    log.info("%s (usually up to %s)", what, duration(expected))

    def beat() -> None:
        while not stop.wait(every):
            elapsed = time.monotonic() - start
            left = expected - elapsed
            usual = f"longer than the usual {duration(expected)}"
            eta = f"ETA {duration(left)}" if left > 0 else usual
            log.info("%s: %s elapsed, %s", what, duration(elapsed), eta)

    thread = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        log.info("%s: done in %s", what, duration(time.monotonic() - start))
