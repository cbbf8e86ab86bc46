"""A progress bar with loss and samples/s for people, and log lines for files (rank 0 only)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from conveyor.progress import eta_text

__all__ = ["Progress"]

log = logging.getLogger("training")


class Progress:
    """Shows the step, loss, learning rate and throughput; logs every ``log_every`` steps."""

    def __init__(
        self, total_steps: int, start_step: int, enabled: bool, log_every: int | None = None
    ) -> None:
        self.total = total_steps
        self.enabled = enabled
        self.log_every = log_every or max(1, total_steps // 20)
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=True
            )
        self._window_start = time.perf_counter()
        self._window_samples = 0
        self._start_step = start_step
        self._started = self._window_start

    def update(self, step: int, epoch: float, loss: float, lr: float, samples: int) -> None:
        """Called after each optimizer step with the samples it consumed."""
        if not self.enabled:
            return
        self._window_samples += samples
        elapsed = time.perf_counter() - self._window_start
        rate = self._window_samples / elapsed if elapsed > 0 else 0.0
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.0f}")
            self._bar.update(1)
        if step % self.log_every == 0 or step == self.total:
            log.info(
                "step %s  epoch %.2f  loss %.4f  lr %.2e  %.1f samples/s",
                self.pace(step),
                epoch,
                loss,
                lr,
                rate,
            )
            self._window_start = time.perf_counter()
            self._window_samples = 0

    def pace(self, step: int) -> str:
        """``120/400 (30%), 41 s elapsed, ETA 1 min 36 s``: this run's steps (after a resume,
        the pace counts only the steps this process took)."""
        elapsed = time.perf_counter() - self._started
        return eta_text(step, self.total, elapsed, since=self._start_step)

    def note(self, message: str, *args: object) -> None:
        if self.enabled:
            log.info(message, *args)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
