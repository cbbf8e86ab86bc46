"""Chat rows: ``{"messages": [{"role", "content"}, ...]}`` or ``{"prompt", "completion"}``.

:func:`read_chat_split` reads a JSONL split into :class:`Conversation` values. A row whose
shape is wrong (not an object, ``messages`` not a list, a turn without a string ``content``)
raises :class:`ChatFormatError` naming ``file:line`` and the field. Whether the values make
sense (known roles, no empty turn, the last turn from the assistant) is a separate question,
:func:`problems`: data checks count every such row, training refuses the first
(``strict=True``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.splits import DataError, not_utf8

__all__ = [
    "ROLES",
    "ChatFormatError",
    "Conversation",
    "Message",
    "conversation_from_record",
    "problems",
    "prompt_key",
    "read_chat_split",
]

ROLES = ("system", "user", "assistant")


class ChatFormatError(DataError):
    """A chat row that cannot be used; the message names ``file:line`` and the field."""

    def __init__(self, path: Path, line: int, field: str, reason: str) -> None:
        self.field = field
        super().__init__(path, f"{field}: {reason}", line)


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Conversation:
    """One chat row; ``line`` is its line in the file (1-based)."""

    messages: tuple[Message, ...]
    line: int

    @property
    def prompt(self) -> tuple[Message, ...]:
        """Everything before the last turn: what the model is asked."""
        return self.messages[:-1]

    @property
    def reference(self) -> str:
        """The last turn's text: the answer the model should give."""
        return self.messages[-1].content if self.messages else ""

    def as_dicts(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.messages]


def _message(value: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}|expected an object with role and content")
    for key in ("role", "content"):
        if key not in value:
            raise ValueError(f"{where}.{key}|missing")
        if not isinstance(value[key], str):
            got = type(value[key]).__name__
            raise ValueError(f"{where}.{key}|expected a string, got {got}")
    return Message(value["role"], value["content"])


def _messages(record: Mapping[str, Any]) -> tuple[Message, ...]:
    if "messages" in record:
        turns = record["messages"]
        if not isinstance(turns, list):
            raise ValueError(f"messages|expected a list of turns, got {type(turns).__name__}")
        if not turns:
            raise ValueError("messages|empty list: a conversation needs at least one turn")
        return tuple(_message(turn, i) for i, turn in enumerate(turns))
    if "prompt" in record or "completion" in record:
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str):
                got = type(record.get(key)).__name__ if key in record else "nothing"
                raise ValueError(f"{key}|expected a string, got {got}")
        return (Message("user", record["prompt"]), Message("assistant", record["completion"]))
    keys = ", ".join(map(str, record)) or "none"
    raise ValueError(
        f"messages|missing: a chat row has messages, or prompt and completion (keys: {keys})"
    )


def conversation_from_record(record: Any, path: Path, line: int) -> Conversation:
    """One row as a Conversation, or ChatFormatError for a row of the wrong shape."""
    if not isinstance(record, Mapping):
        raise ChatFormatError(
            path, line, "row", f"expected a JSON object, got {type(record).__name__}"
        )
    try:
        return Conversation(_messages(record), line)
    except ValueError as exc:
        field, reason = str(exc).split("|", 1)
        raise ChatFormatError(path, line, field, reason) from exc


def problems(conversation: Conversation) -> Iterator[tuple[str, str]]:
    """(field, reason) for each value that makes a well-shaped row unusable for training."""
    for index, message in enumerate(conversation.messages):
        if message.role not in ROLES:
            yield f"messages[{index}].role", f"{message.role!r} is not one of {', '.join(ROLES)}"
        if not message.content.strip():
            yield f"messages[{index}].content", "empty"
    last = len(conversation.messages) - 1
    if conversation.messages[last].role != "assistant":
        role = conversation.messages[last].role
        yield f"messages[{last}].role", f"the last turn must be from the assistant, not {role!r}"


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() != ".jsonl":
        raise DataError(path, "chat data must be JSONL (one conversation per line)")
    if not path.is_file():
        raise DataError(path, "file not found")
    utf8_before = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, number, raw, exc, utf8_before) from exc
            utf8_before = utf8_before or not raw.isascii()
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                raise DataError(path, f"invalid JSON: {reason}", number) from exc


def read_chat_split(path: str | Path, *, strict: bool = True) -> list[Conversation]:
    """Every conversation of a JSONL split; ``strict`` also refuses the first bad value."""
    split = Path(path)
    conversations = []
    for number, record in _json_lines(split):
        conversation = conversation_from_record(record, split, number)
        if strict:
            for field, reason in problems(conversation):
                raise ChatFormatError(split, number, field, reason)
        conversations.append(conversation)
    if not conversations:
        raise DataError(split, "the split has no rows")
    return conversations


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def prompt_key(messages: Sequence[Message]) -> str:
    """What counts as 'the same prompt': roles and case-folded, whitespace-collapsed texts."""
    return "\n".join(f"{m.role}: {_normalized(m.content)}" for m in messages)
