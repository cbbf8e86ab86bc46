"""An LLM arrival trace (the Azure LLM inference trace 2023 format), read and scaled.

One row per request: ``TIMESTAMP`` (arrival, ``YYYY-MM-DD HH:MM:SS.fffffff``),
``ContextTokens``, ``GeneratedTokens``. A malformed line is refused with ``file:line`` and what
is wrong with it; nothing is skipped silently. Scaling keeps the arrival pattern and changes
what one machine can serve: ``rate`` multiplies the arrival rate (times divided by it), ``tokens``
multiplies prompt and output sizes (each at least 1, at most its cap).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from testbed.paths import DATA_DIR, SHARED_DATA_DIR

__all__ = [
    "HEADER",
    "SLICE",
    "WHOLE_HOUR",
    "Arrival",
    "TraceError",
    "read_trace",
    "scale",
]

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SLICE = DATA_DIR / "azure_llm_trace_2023" / "conv_10min.csv"  # shipped: the first 10 minutes
WHOLE_HOUR = SHARED_DATA_DIR / "azure_llm_trace_2023" / "conv.csv"


class TraceError(ValueError):
    """A trace file that cannot be replayed: ``file:line: what``."""


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the trace's first arrival
    prompt_tokens: int
    output_tokens: int


def _timestamp(text: str) -> datetime:
    # seven fractional digits: Python reads six
    whole, _, fraction = text.strip().partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}" if fraction else whole)


def _row(fields: list[str], where: str, start: datetime | None) -> tuple[datetime, int, int]:
    if len(fields) != len(HEADER):
        raise TraceError(f"{where}: {len(fields)} fields, expected {len(HEADER)} ({HEADER})")
    try:
        at = _timestamp(fields[0])
    except ValueError:
        raise TraceError(f"{where}: TIMESTAMP {fields[0]!r} is not a date and time") from None
    sizes = []
    for name, text in zip(HEADER[1:], fields[1:], strict=True):
        if not text.strip().isdigit():
            raise TraceError(f"{where}: {name} {text!r} is not a whole number >= 0")
        sizes.append(int(text))
    if start is not None and at < start:
        raise TraceError(f"{where}: TIMESTAMP {fields[0]} is before the trace's first arrival")
    return at, sizes[0], sizes[1]


def read_trace(path: Path, limit_seconds: float | None = None) -> list[Arrival]:
    """The trace's arrivals in file order (``limit_seconds``: only those before it)."""
    arrivals: list[Arrival] = []
    start: datetime | None = None
    with path.open(newline="", encoding="utf-8") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            where = f"{path}:{number}"
            if number == 1:
                if tuple(f.strip() for f in fields) != HEADER:
                    raise TraceError(f"{where}: header {fields}, expected {list(HEADER)}")
                continue
            at, prompt, output = _row(fields, where, start)
            start = start or at
            offset = (at - start).total_seconds()
            if limit_seconds is not None and offset >= limit_seconds:
                break
            arrivals.append(Arrival(offset, prompt, output))
    if not arrivals:
        raise TraceError(f"{path}: no arrivals")
    return arrivals


def scale(
    arrivals: Sequence[Arrival],
    *,
    rate: float = 1.0,
    tokens: float = 1.0,
    max_prompt_tokens: int | None = None,
    max_output_tokens: int | None = None,
) -> list[Arrival]:
    """The same pattern, ``rate`` times as fast and ``tokens`` times as long."""
    if rate <= 0 or tokens <= 0:
        raise ValueError(f"rate and tokens must be > 0 (rate {rate}, tokens {tokens})")

    def size(n: int, cap: int | None) -> int:
        scaled = max(1, math.ceil(n * tokens))
        return min(scaled, cap) if cap else scaled

    return [
        Arrival(
            a.at / rate,
            size(a.prompt_tokens, max_prompt_tokens),
            size(a.output_tokens, max_output_tokens),
        )
        for a in arrivals
    ]
