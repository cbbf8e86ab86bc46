"""Conversations to token ids with the tokenizer's chat template; labels on assistant turns.

The template renders the whole conversation once; each assistant turn's characters are
found by rendering the prefix before it (with the generation prompt) and the prefix through
it, and the tokens whose character offsets fall inside a turn are its labels. Every other
token (system prompt, user turns, the template's role headers) gets label -100, so the loss
is on what the assistant says, its end-of-turn token included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.chat.records import Conversation, Message

__all__ = [
    "IGNORE_INDEX",
    "ChatTemplateError",
    "RenderedChat",
    "assistant_spans",
    "render_for_training",
    "render_prompt",
]

IGNORE_INDEX = -100


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template, or one whose prefixes do not render as prefixes."""


@dataclass(frozen=True)
class RenderedChat:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _render(tokenizer: Any, messages: Sequence[Message], generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError("the tokenizer has no chat template; chat data needs one")
    text = tokenizer.apply_chat_template(
        [m.as_dict() for m in messages], tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt text a model continues: the turns so far and the assistant's header."""
    return _render(tokenizer, messages, generation_prompt=True)


def assistant_spans(
    tokenizer: Any, conversation: Conversation
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it."""
    messages = conversation.messages
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False).rstrip()
        if not (
            full.startswith(before) and full.startswith(through) and len(through) > len(before)
        ):
            raise ChatTemplateError(
                "the chat template does not render a conversation's prefix as its prefix; "
                "cannot find the assistant turns"
            )
        spans.append((len(before), len(through)))
    return full, spans


def render_for_training(
    tokenizer: Any, conversation: Conversation, max_length: int
) -> RenderedChat:
    """Token ids of the conversation (at most ``max_length``) and labels on assistant tokens."""
    text, spans = assistant_spans(tokenizer, conversation)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if end > start and any(s <= start and end <= e for s, e in spans):
            labels[position] = ids[position]
    truncated = len(ids) > max_length
    return RenderedChat(ids[:max_length], labels[:max_length], truncated)
