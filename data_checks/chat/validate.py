"""``validate_chat``: the data checks of a chat recipe (``data.format: chat``), as a Report.

The GE suites (:mod:`data_checks.chat.suites`) judge the values; the pandas checks here
judge what GE has no expectation for: repeated conversations, prompts of validation or test
also in train (by the prompt, not only the whole text), and conversation token lengths
against ``model.max_length``. A row of the wrong shape makes the split unusable, with
``file:line`` and the field in the report's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from conveyor.chat import Conversation, prompt_key, read_chat_split
from conveyor.recipe.schema import ChecksSection, with_extra
from conveyor.splits import DataError, fingerprint_splits
from data_checks import checks as data_gates
from data_checks.chat.suites import conversation_frame, conversation_suite, turn_frame, turn_suite
from data_checks.chat.tokens import ChatTokens
from data_checks.drift_report import attach_drift
from data_checks.expectations import ge_version, run_suite
from data_checks.reference import Reference
from data_checks.report import Check, Outcome, Report, Status
from data_checks.stats import chat_profile, duplicates, leakage, length_summary

__all__ = ["chat_checks", "read_chat_splits", "validate_chat"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def read_chat_splits(
    splits: Mapping[str, Path], extra: Sequence[Path] = ()
) -> dict[str, list[Conversation]]:
    """Every split's conversations (the ``extra`` files' are train's); a row of the wrong
    shape raises (naming file:line)."""
    read = {name: read_chat_split(path, strict=False) for name, path in splits.items()}
    for path in extra:
        read["train"] = [*read.get("train", []), *read_chat_split(path, strict=False)]
    return read


@dataclass(frozen=True)
class _Keys:
    prompts: pd.Series
    texts: pd.Series


def _repeated_prompts(split: str, found: Any) -> Check:
    summary = (
        f"{found.rows:,} of {found.total:,} rows ({found.share:.2%}) repeat a prompt of the "
        "split with another answer (several references per prompt: expected, not gated)"
    )
    return Check("repeated_prompts", split, Outcome.PASSED, summary, details={"rows": found.rows})


def _prompt_leakage(split: str, found: Any, limit: float) -> Check:
    check = data_gates.check_leakage(split, found, limit)
    summary = check.summary.replace("also appear in train", "have a prompt also in train")
    return Check("prompt_leakage", split, check.outcome, summary, details=check.details)


def chat_checks(
    conversations: Mapping[str, Sequence[Conversation]],
    checks: ChecksSection,
    max_length: int,
    tokens: ChatTokens,
    method: str,
) -> list[Check]:
    """Duplicates, prompt and text leakage against train, token truncation and the share of
    unknown tokens, per split."""
    keys = {
        name: _Keys(
            pd.Series([prompt_key(c.prompt) for c in rows]),
            pd.Series([prompt_key(c.messages) for c in rows]),
        )
        for name, rows in conversations.items()
    }
    found: list[Check] = []
    for name, key in keys.items():
        found.append(
            data_gates.check_duplicates(name, duplicates(key.texts), checks.max_duplicate_share)
        )
        found.append(_repeated_prompts(name, duplicates(key.prompts)))
        if name != "train" and "train" in keys:
            train = keys["train"]
            limit = checks.max_leakage_share
            found.append(data_gates.check_leakage(name, leakage(train.texts, key.texts), limit))
            found.append(_prompt_leakage(name, leakage(train.prompts, key.prompts), limit))
    for name, rows in conversations.items():
        tally = tokens(rows)
        check = data_gates.check_truncation(
            name, tally.lengths, max_length, checks.max_truncated_share, method
        )
        found.append(
            Check(
                "conversation_truncation",
                name,
                check.outcome,
                check.summary.replace("texts", "conversations", 1),
                details=check.details,
            )
        )
        if tally.unknown is not None:
            total, limit = int(tally.lengths.sum()), checks.max_unknown_token_share
            found.append(data_gates.check_unknown_tokens(name, tally.unknown, total, limit))
    return found


def _describe(rows: list[Conversation]) -> dict[str, Any]:
    frame = conversation_frame(rows)
    lengths = pd.Series([len(c.reference) for c in rows])
    return {
        "rows": len(rows),
        "distinct_prompts": int(frame["prompt"].nunique()),
        "turns": length_summary(frame["turns"]),
        "length": length_summary(lengths),
    }


def validate_chat(
    splits: Mapping[str, Path],
    *,
    deployment: str,
    checks: ChecksSection,
    max_length: int,
    tokens: ChatTokens,
    method: str,
    reference: Reference | None = None,
    progress: Progress | None = None,
    extra: Sequence[Path] = (),
) -> Report:
    """Validate chat splits (``extra`` files as part of train); never raises for bad data:
    a bad row gives status UNUSABLE."""
    say = progress or _quiet
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = Report(deployment=deployment, task="causal-lm", created_at=created)
    started = time.perf_counter()
    try:
        conversations = read_chat_splits(splits, extra)
    except DataError as exc:
        report.status, report.error = Status.UNUSABLE, str(exc)
        return report
    report.data_fingerprint = fingerprint_splits(with_extra(splits, extra))
    report.splits = {name: _describe(rows) for name, rows in conversations.items()}
    report.timings["read_s"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    for name, rows in conversations.items():
        say(f"great expectations: {name} ({len(rows):,} conversations)")
        for check in run_suite(name, turn_frame(rows)[["role", "content"]], turn_suite(checks)):
            report.add(check)
        frame = conversation_frame(rows)[["last_role", "turns"]]
        for check in run_suite(name, frame, conversation_suite()):
            report.add(check)
    report.timings["great_expectations_s"] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    say("duplicates, prompt leakage and conversation tokens")
    for check in chat_checks(conversations, checks, max_length, tokens, method):
        report.add(check)
    report.token_lengths = {"method": method, "max_length": max_length}
    report.profile = chat_profile(conversations["train"])
    report.timings["pandas_checks_s"] = round(time.perf_counter() - started, 3)

    attach_drift(report, reference, checks)
    report.timings["total_s"] = round(sum(report.timings.values()), 3)
    report.great_expectations = ge_version()
    return report
