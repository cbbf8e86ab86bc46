"""Task plug-ins: checks of what a model wrote that belong to one dataset, not to the gates.

A plug-in is a :class:`TaskChecker` in a module of its own, listed in :data:`CHECKERS` under
the name a recipe gives in ``gates.generation.task_check``. The chat gate asks
:func:`checker_for` and knows no task by name. A new data-to-text task adds its module and
its line here (and its name to the recipe schema's ``GenerationTaskCheck``).
"""

from __future__ import annotations

from typing import Any

from gates.plugins.checker import TaskChecker
from gates.plugins.crosswoz_acts import CROSSWOZ_ACTS
from gates.plugins.e2e_facts import E2E_FACTS

__all__ = ["CHECKERS", "TaskChecker", "checker_for"]

CHECKERS: dict[str, TaskChecker[Any]] = {
    checker.name: checker for checker in (E2E_FACTS, CROSSWOZ_ACTS)
}


def checker_for(task_check: str) -> TaskChecker[Any] | None:
    """The plug-in a recipe's ``task_check`` names; None for the gate's own checks or none."""
    return CHECKERS.get(task_check)
