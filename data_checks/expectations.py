"""Glue to Great Expectations 1.x: one ephemeral context per process, suites run on frames.

GE is imported on first use (2.5-4 s), never at import time of ``data_checks``.
The context, the pandas data source, its dataframe asset and the whole-dataframe batch
definition are made once and shared by every run in the process.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from data_checks.report import Check, Outcome
from data_checks.stats import WHITESPACE

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context.data_context.abstract_data_context import (
        AbstractDataContext,
    )
    from great_expectations.expectations.expectation import Expectation

__all__ = ["BLANK_TEXT", "ge_version", "run_suite", "shared_context"]

# Same meaning in pyarrow's RE2 (string columns) and Python's re (object columns); 2.6x
# faster in RE2 than ``^\s*$``.
BLANK_TEXT = f"^[{WHITESPACE}]*$"

_RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
_names = itertools.count(1)


def ge_version() -> str:
    import great_expectations as gx

    return str(gx.__version__)


@lru_cache(maxsize=1)
def shared_context() -> tuple[AbstractDataContext, BatchDefinition[Any]]:
    import great_expectations as gx

    # This GE module pins its logger to INFO: one line per ephemeral docs folder it creates.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    asset = context.data_sources.add_pandas("conveyor").add_dataframe_asset("split")
    return context, asset.add_batch_definition_whole_dataframe("whole split")


def _example(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _to_check(split: str, rows: int, result: Any) -> Check:
    config = result.expectation_config
    column = config.kwargs.get("column", "")
    name = f"{config.type}({column})" if column else str(config.type)
    why = (config.meta or {}).get("why", config.type)
    found: dict[str, Any] = dict(result.result or {})
    raised = (result.exception_info or {}).get("raised_exception")
    details: dict[str, Any] = {
        "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    }
    if raised:
        message = result.exception_info.get("exception_message", "unknown error")
        summary = f"{why}: could not be evaluated ({message})"
    elif found.get("unexpected_count") is not None:
        count = int(found["unexpected_count"])
        examples = [_example(v) for v in found.get("partial_unexpected_list", [])]
        details |= {"unexpected_count": count, "examples": examples}
        summary = f"{why}: {count:,} of {rows:,} rows ({100 * count / max(rows, 1):.2f}%)"
        summary += f", e.g. {examples}" if count else ""
    else:
        details["observed_value"] = _example(found.get("observed_value"))
        summary = why if not result.success else "ok"
        if "observed_value" in found:
            summary += f" (observed {details['observed_value']})"
    outcome = Outcome.PASSED if result.success else Outcome.FAILED
    return Check(name, split, outcome, summary, "great_expectations", details)


def run_suite(split: str, frame: pd.DataFrame, expectations: Sequence[Expectation]) -> list[Check]:
    """Validate ``frame`` against the expectations with GE; one Check per expectation."""
    import great_expectations as gx

    context, batch_definition = shared_context()
    name = f"{split}-{next(_names)}"
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=list(expectations)))
    try:
        definition = gx.ValidationDefinition(data=batch_definition, suite=suite, name=name)
        results = definition.run(
            batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT
        )
    finally:
        context.suites.delete(name)
    checks = [_to_check(split, len(frame), result) for result in results.results]
    return sorted(checks, key=lambda check: check.name)
