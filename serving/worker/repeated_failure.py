"""A failure that repeats every tick, logged without flooding the log."""

from __future__ import annotations

import logging
import time

__all__ = ["RepeatedFailure"]

log = logging.getLogger(__name__)


class RepeatedFailure:
    """Logs a failure that repeats every tick (the registry down) without flooding the log:
    the first with its traceback, then one line every ``every`` seconds with the count, and
    one line when it stops."""

    def __init__(self, message: str, every: float = 30.0) -> None:
        self.message = message
        self.every = every
        self.count = 0
        self._last = 0.0

    def happened(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count == 1:
            log.warning(self.message, exc_info=True)
            self._last = now
        elif now - self._last >= self.every:
            log.warning("%s (%d times so far)", self.message, self.count)
            self._last = now

    def ended(self) -> None:
        if self.count:
            log.warning("recovered after %d failures: %s", self.count, self.message)
            self.count = 0
