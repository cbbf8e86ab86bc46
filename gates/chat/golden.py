"""The golden suite: prompts a person wrote down with what every answer must (not) say.

A YAML list; each case has ``prompt`` (a user message) or ``messages``, and any of
``must_include`` / ``must_not_include`` (lists of strings, case-insensitive) and ``regex``
(searched in the answer). The suite passes only whole: one failed case fails the gate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conveyor.chat import Message
from conveyor.errors import ConveyorError

__all__ = ["GoldenCase", "GoldenError", "GoldenResult", "check_golden", "load_golden"]

_KEYS = {"name", "prompt", "messages", "must_include", "must_not_include", "regex"}


class GoldenError(ConveyorError):
    """A golden suite file that cannot be used; names the file and the case."""


@dataclass(frozen=True)
class GoldenCase:
    name: str
    messages: tuple[Message, ...]
    must_include: tuple[str, ...] = ()
    must_not_include: tuple[str, ...] = ()
    regex: str | None = None


@dataclass(frozen=True)
class GoldenResult:
    name: str
    answer: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where}: expected a string or a list of strings")


def _messages(raw: dict[str, Any], where: str) -> tuple[Message, ...]:
    if isinstance(raw.get("prompt"), str) and "messages" not in raw:
        return (Message("user", raw["prompt"]),)
    turns = raw.get("messages")
    if (
        isinstance(turns, list)
        and turns
        and all(
            isinstance(t, dict)
            and isinstance(t.get("role"), str)
            and isinstance(t.get("content"), str)
            for t in turns
        )
    ):
        return tuple(Message(t["role"], t["content"]) for t in turns)
    raise ValueError(f"{where}: needs prompt (a string) or messages (role and content each)")


def _case(raw: Any, index: int) -> GoldenCase:
    where = f"case {index + 1}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    regex = raw.get("regex")
    if regex is not None:
        try:
            re.compile(regex)
        except (re.error, TypeError) as exc:
            raise ValueError(f"{where}.regex: not a regular expression ({exc})") from exc
    case = GoldenCase(
        name=str(raw.get("name") or where),
        messages=_messages(raw, where),
        must_include=_strings(raw.get("must_include"), f"{where}.must_include"),
        must_not_include=_strings(raw.get("must_not_include"), f"{where}.must_not_include"),
        regex=regex,
    )
    if not (case.must_include or case.must_not_include or case.regex):
        raise ValueError(f"{where}: checks nothing (give must_include, must_not_include or regex)")
    return case


def load_golden(path: Path) -> list[GoldenCase]:
    """The cases of a golden suite file; GoldenError names the file and the case."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GoldenError(f"{path}: cannot read the golden suite ({exc})") from exc
    if not isinstance(raw, list) or not raw:
        raise GoldenError(f"{path}: a golden suite is a non-empty YAML list of cases")
    try:
        return [_case(item, i) for i, item in enumerate(raw)]
    except ValueError as exc:
        raise GoldenError(f"{path}: {exc}") from exc


def check_golden(cases: Sequence[GoldenCase], answers: Sequence[str]) -> list[GoldenResult]:
    """Each case against its answer; a result lists every broken expectation."""
    results = []
    for case, answer in zip(cases, answers, strict=True):
        folded = answer.casefold()
        failures = [f"missing {s!r}" for s in case.must_include if s.casefold() not in folded]
        failures += [f"contains {s!r}" for s in case.must_not_include if s.casefold() in folded]
        if case.regex is not None and not re.search(case.regex, answer):
            failures.append(f"does not match /{case.regex}/")
        results.append(GoldenResult(case.name, answer, failures))
    return results
