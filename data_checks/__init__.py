"""Data checks: a Great Expectations gate that stops bad data before training.

``validate_recipe(recipe, reference)`` (or ``validate(...)`` with plain arguments) reads
the splits, runs the GE suite for the task and the pandas checks (duplicates, leakage,
class sizes, truncation, drift), and returns a :class:`Report` whose ``exit_code`` is
0 (pass), 1 (failed checks) or 2 (unusable input). Great Expectations is imported on
first validation, not with this package.
"""

from data_checks.recipe import validate_recipe
from data_checks.reference import Reference, find_reference, profile_of_version
from data_checks.report import Check, Outcome, Report, Status, write_reports
from data_checks.stats import PROFILE_KEY, data_profile
from data_checks.text.tokens import TokenCounter, token_counter
from data_checks.text.validate import validate

__all__ = [
    "PROFILE_KEY",
    "Check",
    "Outcome",
    "Reference",
    "Report",
    "Status",
    "TokenCounter",
    "data_profile",
    "find_reference",
    "profile_of_version",
    "token_counter",
    "validate",
    "validate_recipe",
    "write_reports",
]
