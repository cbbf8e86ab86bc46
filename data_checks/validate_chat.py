"""``validate_chat``: the data checks of a chat recipe (``data.format: chat``), as a Report."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from conveyor.chat import Conversation
from conveyor.pretrained import SMOLLM2, load_gguf_tokenizer, smollm2_gguf
from conveyor.recipe.schema import ChecksSection
from conveyor.splits import DataError, fingerprint_splits
from data_checks.chat import (
    APPROXIMATE_CHAT,
    ChatTokens,
    approximate_chat_tokens,
    chat_checks,
    conversation_frame,
    conversation_suite,
    read_chat_splits,
    template_chat_tokens,
    turn_frame,
    turn_suite,
)
from data_checks.drift_report import attach_drift
from data_checks.expectations import ge_version, run_suite
from data_checks.reference import Reference
from data_checks.report import Report, Status
from data_checks.stats import chat_profile, length_summary

__all__ = ["chat_token_counter", "validate_chat"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def chat_token_counter(base: str) -> tuple[ChatTokens, str]:
    """Count with the base's own chat template where it has one, else approximate."""
    from transformers import AutoTokenizer

    tokenizer: Any = None
    if base == SMOLLM2:  # the tokenizer is in the GGUF: no need to convert the weights
        gguf = smollm2_gguf()
        tokenizer, source = load_gguf_tokenizer(gguf), str(gguf)
    elif Path(base).is_absolute() and (Path(base) / "tokenizer_config.json").is_file():
        tokenizer, source = AutoTokenizer.from_pretrained(base), base
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return template_chat_tokens(tokenizer), f"chat template of {source}"
    return approximate_chat_tokens, APPROXIMATE_CHAT


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
) -> Report:
    """Validate chat splits; never raises for bad data: a bad row gives status UNUSABLE."""
    say = progress or _quiet
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = Report(deployment=deployment, task="causal-lm", created_at=created)
    started = time.perf_counter()
    try:
        conversations = read_chat_splits(splits)
    except DataError as exc:
        report.status, report.error = Status.UNUSABLE, str(exc)
        return report
    report.data_fingerprint = fingerprint_splits(splits)
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
