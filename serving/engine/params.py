"""One decode request's terms, apart from the loop that runs it: how it samples, the events
it hands back, and how it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from serving.engine.limits import (
    MAX_SEED,
    MAX_TEMPERATURE,
    MAX_TOP_P,
    MIN_MAX_TOKENS,
    MIN_SEED,
    MIN_TEMPERATURE,
    TOP_P_ABOVE,
)
from serving.refusal import InvalidRequest

__all__ = ["DecodeError", "EngineClosed", "SamplingParams", "TokenEvent", "collect"]


@dataclass(frozen=True)
class SamplingParams:
    """How one request decodes; a value out of :mod:`~serving.engine.limits` is refused
    (InvalidRequest naming the field)."""

    max_tokens: int
    temperature: float = 0.0  # 0 (or below GREEDY_BELOW) = greedy
    top_p: float = 1.0
    seed: int | None = None  # same seed + same request => same text
    stop: tuple[str, ...] = ()  # output ends before the first match, finish_reason "stop"

    def __post_init__(self) -> None:
        if self.max_tokens < MIN_MAX_TOKENS:
            raise InvalidRequest(
                f"max_tokens must be at least {MIN_MAX_TOKENS}, not {self.max_tokens}",
                field="max_tokens",
            )
        if not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE:
            raise InvalidRequest(
                f"temperature must be between {MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}, "
                f"not {self.temperature}",
                field="temperature",
            )
        if self.seed is not None and not MIN_SEED <= self.seed <= MAX_SEED:
            raise InvalidRequest(
                f"seed must be an integer from {MIN_SEED} to {MAX_SEED}, not {self.seed}",
                field="seed",
            )
        if not TOP_P_ABOVE < self.top_p <= MAX_TOP_P:
            raise InvalidRequest(
                f"top_p must be in ({TOP_P_ABOVE:g}, {MAX_TOP_P:g}], not {self.top_p}",
                field="top_p",
            )


@dataclass(frozen=True)
class TokenEvent:
    text: str  # new text since the previous event ("" while a character or stop is pending)
    completion_tokens: int  # output tokens so far
    prompt_tokens: int
    finish_reason: str | None  # None while running; last event: "stop" | "length"
    token_ids: tuple[int, ...] = ()  # the output tokens of this event


class DecodeError(RuntimeError):
    """Decoding failed for this request (the cause is chained); the engine goes on."""


class EngineClosed(DecodeError):
    """The engine was closed before this request finished."""


async def collect(events: AsyncIterator[TokenEvent]) -> tuple[str, TokenEvent]:
    """A whole answer from an engine's stream: its text and the last event (usage, finish)."""
    parts: list[str] = []
    last: TokenEvent | None = None
    async for event in events:
        parts.append(event.text)
        last = event
    assert last is not None, "a stream ends with a finish event"
    return "".join(parts), last
