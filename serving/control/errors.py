"""Serving errors a user sees as one line (the CLI maps them to exit codes)."""

from __future__ import annotations

from conveyor.errors import ConveyorError, ExitCode

__all__ = ["ConvergenceError", "PromotionRefused"]


class PromotionRefused(ConveyorError):
    """The version fails to load or fails its smoke set: it never takes traffic."""

    exit_code = ExitCode.PROMOTION_REFUSED


class ConvergenceError(ConveyorError):
    """Some workers did not come to serve the version in time; the message names them."""

    exit_code = ExitCode.NOT_CONVERGED
