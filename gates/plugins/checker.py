"""``TaskChecker``: what a task plug-in gives the chat gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["TaskChecker"]

Result = TypeVar("Result")


class TaskChecker(Protocol[Result]):
    """Checks each answer against its prompt; turns a run's results into rates.

    ``rates`` names its figures as metrics of the candidate: ``omission_rate`` and
    ``hallucination_rate`` are held to the recipe's ``gates.generation.max_omission_rate``
    and ``max_hallucination_rate``; any other rate is reported.
    """

    @property
    def name(self) -> str:
        """The recipe's ``gates.generation.task_check`` that selects this checker."""
        ...

    def check(self, prompt_text: str, answer: str) -> Result:
        """One answer against the last user message of the prompt it answered."""
        ...

    def rates(self, results: Sequence[Result]) -> dict[str, float]:
        """The run's rates (shares of answers, 0..1) from every answer's result."""
        ...
