"""Errors a user can cause and fix: the CLI prints them as one line, no traceback."""

from __future__ import annotations

__all__ = ["ConveyorError", "NotFoundError", "RecipeError", "RegistryConflictError"]


class ConveyorError(Exception):
    """A mistake in what the user asked for, with the exit code the CLI returns."""

    exit_code: int = 2


class RecipeError(ConveyorError):
    """A recipe that cannot be used: each problem names the key and the file."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {problem}" for problem in problems]
        super().__init__("\n".join(lines))


class NotFoundError(ConveyorError):
    """A version, deployment or key that the registry does not have."""

    exit_code = 3


class RegistryConflictError(ConveyorError):
    """Someone else changed the registry first (an alias moved under us)."""

    exit_code = 4
