"""The one error of the model-folder format."""

from __future__ import annotations

from conveyor.errors import ConveyorError

__all__ = ["ArtifactError", "first_line"]


class ArtifactError(ConveyorError):
    """The model folder is missing, altered or unloadable; the message says why in one line."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line reasons."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
