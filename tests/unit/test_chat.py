"""Chat rows: shapes refused with file:line and field; loss only on assistant tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor.chat import (
    IGNORE_INDEX,
    ChatFormatError,
    Conversation,
    Message,
    assistant_spans,
    problems,
    prompt_key,
    read_chat_split,
    render_for_training,
    render_prompt,
)
from conveyor.splits import DataError


def _write(tmp_path: Path, rows: list[Any], name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


@pytest.mark.unit
def test_both_formats_read_with_their_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD, "", {"prompt": "2+2?", "completion": "4"}])
    first, second = read_chat_split(path)
    assert first.prompt == (Message("user", "Hi"),) and first.reference == "Hello"
    assert second.messages == (Message("user", "2+2?"), Message("assistant", "4"))
    assert (first.line, second.line) == (1, 3)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ([1, 2], "row", "expected a JSON object"),
        ({"text": "x"}, "messages", "missing"),
        ({"messages": "hi"}, "messages", "expected a list"),
        ({"messages": []}, "messages", "empty list"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing"),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
            "expected a string",
        ),
        ({"prompt": "x"}, "completion", "expected a string, got nothing"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role", "'bot' is not one"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]},
            "messages[1].content",
            "empty",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, "messages[0].role", "last turn"),
    ],
)
def test_a_bad_row_stops_naming_file_line_and_field(
    tmp_path: Path, row: Any, field: str, reason: str
) -> None:
    path = _write(tmp_path, [GOOD, GOOD, row])
    with pytest.raises(ChatFormatError) as caught:
        read_chat_split(path)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{path}:3: {field}: ")
    assert reason in str(caught.value)


@pytest.mark.unit
def test_not_strict_keeps_rows_whose_values_are_bad(tmp_path: Path) -> None:
    bad = {"messages": [{"role": "bot", "content": ""}]}
    path = _write(tmp_path, [GOOD, bad])
    rows = read_chat_split(path, strict=False)
    assert len(rows) == 2 and list(problems(rows[0])) == []
    assert [field for field, _ in problems(rows[1])] == [
        "messages[0].role",
        "messages[0].content",
        "messages[0].role",
    ]


@pytest.mark.unit
def test_unreadable_files_name_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD, "{not json"])
    with pytest.raises(DataError, match=r"train.jsonl:2: invalid JSON"):
        read_chat_split(path)
    with pytest.raises(DataError, match="must be JSONL"):
        read_chat_split(tmp_path / "train.csv")


@pytest.mark.unit
def test_prompt_key_ignores_case_and_spacing_but_not_roles() -> None:
    a = (Message("user", "Name[The Mill],  area[riverside]"),)
    b = (Message("user", "name[the mill], area[riverside] "),)
    c = (Message("system", "name[the mill], area[riverside]"),)
    assert prompt_key(a) == prompt_key(b) != prompt_key(c)


def _conversation(*turns: tuple[str, str]) -> Conversation:
    return Conversation(tuple(Message(role, text) for role, text in turns), 1)


@pytest.mark.integration
def test_labels_cover_exactly_the_assistant_turns_of_real_template_output(
    smollm2_tokenizer: Any,
) -> None:
    tok = smollm2_tokenizer
    chat = _conversation(
        ("system", "Be brief."),
        ("user", "Name a colour."),
        ("assistant", "Blue."),
        ("user", "Another?"),
        ("assistant", "Green, of course."),
    )
    rendered = render_for_training(tok, chat, max_length=512)
    assert not rendered.truncated and len(rendered.labels) == len(rendered.input_ids)
    trained = [
        i
        for i, label in zip(rendered.input_ids, rendered.labels, strict=True)
        if label != IGNORE_INDEX
    ]
    assert tok.decode(trained) == "Blue.<|im_end|>Green, of course.<|im_end|>"
    ignored = [
        i
        for i, label in zip(rendered.input_ids, rendered.labels, strict=True)
        if label == IGNORE_INDEX
    ]
    assert "Name a colour." in tok.decode(ignored) and "Be brief." in tok.decode(ignored)
    text, spans = assistant_spans(tok, chat)
    assert [text[s:e] for s, e in spans] == ["Blue.<|im_end|>", "Green, of course.<|im_end|>"]


@pytest.mark.integration
def test_prompt_ends_with_the_assistant_header_and_truncation_is_reported(
    smollm2_tokenizer: Any,
) -> None:
    chat = _conversation(("user", "Hi"), ("assistant", "word " * 50))
    prompt = render_prompt(smollm2_tokenizer, chat.prompt)
    assert prompt.endswith("<|im_start|>assistant\n") and "Hi" in prompt
    rendered = render_for_training(smollm2_tokenizer, chat, max_length=45)
    assert rendered.truncated and len(rendered.input_ids) == 45
    assert 0 < rendered.trained_tokens < 45


@pytest.mark.integration
def test_training_batches_pad_without_labels_and_drop_answers_past_the_cut(
    smollm2_tokenizer: Any,
) -> None:
    from training.data import collate
    from training.data.chat import encode_chat

    short = _conversation(("user", "Hi"), ("assistant", "Hello."))
    longer = _conversation(("user", "Tell me more please"), ("assistant", "Sure, here it is."))
    hidden = _conversation(("user", "word " * 80), ("assistant", "never seen"))
    encoded = encode_chat(smollm2_tokenizer, [short, longer, hidden], max_length=60)
    assert (len(encoded.data), encoded.dropped, encoded.truncated) == (2, 1, 1)
    batch = collate(encoded.data, [0, 1], pad_id=smollm2_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape
    padding = batch["attention_mask"] == 0
    assert padding.any() and bool((batch["labels"][padding] == IGNORE_INDEX).all())
    kept = batch["labels"][1][batch["labels"][1] != IGNORE_INDEX]
    assert smollm2_tokenizer.decode(kept) == "Sure, here it is.<|im_end|>"
