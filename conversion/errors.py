"""Why a version cannot be converted: bad input, said in one line (exit 2)."""

from __future__ import annotations

from conveyor.errors import ConveyorError, ExitCode

__all__ = ["ConversionError"]


class ConversionError(ConveyorError):
    exit_code = ExitCode.BAD_INPUT
