"""Chat data checks on the shipped E2E data, and on copies broken one way each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conveyor.recipe.schema import ChecksSection
from data_checks.chat.tokens import APPROXIMATE_CHAT, approximate_chat_tokens, template_chat_tokens
from data_checks.chat.validate import validate_chat
from data_checks.report import Outcome, Status
from testbed.paths import E2E_DIR

pytestmark = pytest.mark.integration

SPLITS = ("train", "validation", "test")


def _copy(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name in SPLITS:
        paths[name] = tmp_path / f"{name}.jsonl"
        shutil.copy(E2E_DIR / f"{name}.jsonl", paths[name])
    return paths


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _save(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(paths: dict[str, Path], tokens: Any = approximate_chat_tokens, **checks: Any) -> Any:
    return validate_chat(
        paths,
        deployment="e2e",
        checks=ChecksSection(**checks),
        max_length=256,
        tokens=tokens,
        method=APPROXIMATE_CHAT,
    )


def _outcomes(report: Any) -> dict[tuple[str, str], Outcome]:
    return {(c.split, c.name): c.outcome for c in report.checks}


def test_the_shipped_e2e_data_passes_with_its_real_template_counts(
    tmp_path: Path, smollm2_tokenizer: Any
) -> None:
    report = _run(_copy(tmp_path), tokens=template_chat_tokens(smollm2_tokenizer))
    assert report.status is Status.PASSED, [c.line() for c in report.failures]
    assert report.splits["test"]["distinct_prompts"] == 1847
    truncation = next(
        c for c in report.checks if c.name == "conversation_truncation" and c.split == "train"
    )
    assert truncation.details["truncated"] == 0 and 60 < truncation.details["median"] < 200
    repeated = next(c for c in report.checks if c.name == "repeated_prompts" and c.split == "train")
    assert repeated.details["rows"] == 3888 - 1336  # several references per MR: not gated


def test_broken_values_are_each_found_by_great_expectations(tmp_path: Path) -> None:
    paths = _copy(tmp_path)
    rows = _rows(paths["validation"])
    rows[0]["messages"][0]["role"] = "bot"
    rows[1]["messages"][1]["content"] = "   "
    rows[2]["messages"] = rows[2]["messages"][:1]  # ends with the user
    _save(paths["validation"], rows)
    report = _run(paths)
    assert report.status is Status.FAILED
    failed = {(c.split, c.name) for c in report.failures}
    assert failed == {
        ("validation", "expect_column_values_to_be_in_set(role)"),
        ("validation", "expect_column_values_to_not_match_regex(content)"),
        ("validation", "expect_column_values_to_be_in_set(last_role)"),
        ("validation", "expect_column_values_to_be_between(turns)"),
    }
    role = next(c for c in report.failures if c.name.endswith("(role)"))
    assert "1 of" in role.summary and "bot" in role.summary


def test_a_prompt_leaked_into_test_is_found_by_the_prompt_alone(tmp_path: Path) -> None:
    paths = _copy(tmp_path)
    train, test = _rows(paths["train"]), _rows(paths["test"])
    for row in test[:100]:  # same MRs as train, other answers: only the prompt leaks
        row["messages"][0]["content"] = train[0]["messages"][0]["content"].upper()
    _save(paths["test"], test)
    outcomes = _outcomes(_run(paths))
    assert outcomes[("test", "prompt_leakage")] is Outcome.FAILED
    assert outcomes[("test", "train_leakage")] is Outcome.PASSED
    assert outcomes[("validation", "prompt_leakage")] is Outcome.PASSED


def test_duplicated_conversations_and_long_ones_fail_their_limits(tmp_path: Path) -> None:
    paths = _copy(tmp_path)
    rows = _rows(paths["train"])
    rows += rows[:600]  # 600 exact repeats: 13% of the split
    rows[5]["messages"][1]["content"] = "word " * 2000
    _save(paths["train"], rows)
    report = _run(paths, max_truncated_share=0.0)
    outcomes = _outcomes(report)
    assert outcomes[("train", "duplicates")] is Outcome.FAILED
    assert outcomes[("train", "conversation_truncation")] is Outcome.FAILED
    assert outcomes[("test", "conversation_truncation")] is Outcome.PASSED


def test_a_row_of_the_wrong_shape_makes_the_data_unusable_naming_file_line_field(
    tmp_path: Path,
) -> None:
    paths = _copy(tmp_path)
    rows = _rows(paths["test"])
    rows[41]["messages"][1] = {"role": "assistant", "content": ["not", "text"]}
    _save(paths["test"], rows)
    report = _run(paths)
    assert report.status is Status.UNUSABLE and report.exit_code == 2
    assert report.error == f"{paths['test']}:42: messages[1].content: expected a string, got list"
