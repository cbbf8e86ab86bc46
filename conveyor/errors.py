"""Errors a user can cause and fix, and the one table of exit codes every command uses.

The CLI prints a :class:`ConveyorError` as one line (no traceback) and exits with its
``exit_code``. :class:`ExitCode` is the only place the numbers are written; the README's
table is generated from it (:func:`exit_code_table`) and a test keeps the two equal.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "EXIT_CODES_END",
    "EXIT_CODES_START",
    "ConveyorError",
    "ExitCode",
    "NotFoundError",
    "RecipeError",
    "RegistryConflictError",
    "exit_code_table",
]

EXIT_CODES_START = "<!-- exit-codes:start (generated from conveyor.errors.ExitCode) -->"
EXIT_CODES_END = "<!-- exit-codes:end -->"


class ExitCode(IntEnum):
    """What a `conveyor` command's exit status means, the same for every command."""

    OK = 0
    SAID_NO = 1
    BAD_INPUT = 2
    NOT_FOUND = 3
    CONFLICT = 4
    PROMOTION_REFUSED = 5
    NOT_CONVERGED = 6
    TRAINING_FAILED = 7
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self][0]

    @property
    def commands(self) -> str:
        return _MEANINGS[self][1]


_MEANINGS: dict[ExitCode, tuple[str, str]] = {
    ExitCode.OK: ("done; every check, gate and canary passed", "all"),
    ExitCode.SAID_NO: (
        "it ran, and a check, a gate or a canary said no (the reason is printed and recorded)",
        "`validate` (failed checks), `evaluate` (gates failed), `promote` (canary rolled back), "
        "`monitor` (drift reported)",
    ),
    ExitCode.BAD_INPUT: (
        "bad input: a recipe key, a data file (`file:line`), an option, an unreachable registry",
        "all",
    ),
    ExitCode.NOT_FOUND: (
        "not found: no such deployment, version, alias or key",
        "all that name one",
    ),
    ExitCode.CONFLICT: (
        "conflict: the registry changed first, or the version already serves",
        "`promote`, `rollback`",
    ),
    ExitCode.PROMOTION_REFUSED: (
        "promotion refused: the version did not load or failed its smoke set; nothing moved",
        "`promote`, `rollback`",
    ),
    ExitCode.NOT_CONVERGED: (
        "some workers did not come to serve the version in time (they are named)",
        "`promote`, `rollback`",
    ),
    ExitCode.TRAINING_FAILED: (
        "training could not start or go on (loss not finite, out of memory, nothing to resume)",
        "`train`",
    ),
    ExitCode.INTERRUPTED: ("interrupted (Ctrl-C)", "all"),
}


def exit_code_table() -> str:
    """The exit codes as the Markdown table the README embeds between the markers."""
    lines = ["| exit | meaning | from |", "|---|---|---|"]
    lines += [f"| {code.value} | {code.meaning} | {code.commands} |" for code in ExitCode]
    return "\n".join(lines)


class ConveyorError(Exception):
    """A mistake in what the user asked for, with the exit code the CLI returns."""

    exit_code: int = ExitCode.BAD_INPUT


class RecipeError(ConveyorError):
    """A recipe that cannot be used: each problem names the key and the file."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {problem}" for problem in problems]
        super().__init__("\n".join(lines))


class NotFoundError(ConveyorError):
    """A version, deployment or key that the registry does not have."""

    exit_code = ExitCode.NOT_FOUND


class RegistryConflictError(ConveyorError):
    """Someone else changed the registry first (an alias moved under us)."""

    exit_code = ExitCode.CONFLICT
