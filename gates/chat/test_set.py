"""The prompts a generative model is judged on: test conversations grouped by prompt, sampled.

E2E has several human references per meaning representation: rows with the same prompt
(by :func:`conveyor.chat.prompt_key`) become one :class:`PromptGroup` holding all their
references. The sample is fixed by the seed and does not depend on the file's row order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.chat import Conversation, Message, prompt_key, read_chat_split

__all__ = ["PromptGroup", "group_by_prompt", "read_prompt_groups", "sample_prompts"]


@dataclass(frozen=True)
class PromptGroup:
    prompt: tuple[Message, ...]
    references: tuple[str, ...]
    key: str

    @property
    def last_user_text(self) -> str:
        users = [m.content for m in self.prompt if m.role == "user"]
        return users[-1] if users else ""


def group_by_prompt(conversations: Sequence[Conversation]) -> list[PromptGroup]:
    """One group per distinct prompt, in order of first appearance, references in file order."""
    order: list[str] = []
    prompts: dict[str, tuple[Message, ...]] = {}
    references: dict[str, list[str]] = {}
    for conversation in conversations:
        key = prompt_key(conversation.prompt)
        if key not in prompts:
            order.append(key)
            prompts[key] = conversation.prompt
            references[key] = []
        references[key].append(conversation.reference)
    return [PromptGroup(prompts[k], tuple(references[k]), k) for k in order]


def sample_prompts(groups: Sequence[PromptGroup], max_prompts: int, seed: int) -> list[PromptGroup]:
    """At most ``max_prompts`` groups, chosen by ``seed`` from the groups sorted by key."""
    if len(groups) <= max_prompts:
        return list(groups)
    by_key = sorted(groups, key=lambda g: g.key)
    chosen = random.Random(seed).sample(range(len(by_key)), max_prompts)
    return [by_key[i] for i in sorted(chosen)]


def read_prompt_groups(path: Path, max_prompts: int, seed: int) -> list[PromptGroup]:
    """The sampled prompt groups of a chat split."""
    return sample_prompts(group_by_prompt(read_chat_split(path)), max_prompts, seed)
