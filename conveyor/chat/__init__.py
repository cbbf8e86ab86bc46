"""Chat data: the ``messages`` and ``prompt``/``completion`` formats, and their rendering.

A data format of the core (like :mod:`conveyor.splits`): data checks, training and the
gates read chat splits through it, and render them with the tokenizer's chat template.
"""

from conveyor.chat.records import (
    ROLES,
    ChatFormatError,
    Conversation,
    Message,
    conversation_from_record,
    problems,
    prompt_key,
    read_chat_split,
)
from conveyor.chat.render import (
    IGNORE_INDEX,
    ChatTemplateError,
    RenderedChat,
    assistant_spans,
    render_for_training,
    render_prompt,
)

__all__ = [
    "IGNORE_INDEX",
    "ROLES",
    "ChatFormatError",
    "ChatTemplateError",
    "Conversation",
    "Message",
    "RenderedChat",
    "assistant_spans",
    "conversation_from_record",
    "problems",
    "prompt_key",
    "read_chat_split",
    "render_for_training",
    "render_prompt",
]
