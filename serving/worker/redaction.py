"""What is taken out of a text before the capture writes it: e-mail addresses, card-like
numbers, and the matches of the version's own ``serving.capture.redact`` patterns.

Applied on the capture's thread, to the whole text before it is cut: a match that a cut
would have split is still found whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["BUILTIN_PATTERNS", "MASK", "Redactor", "redactor_for"]

log = logging.getLogger(__name__)
MASK = "[REDACTED]"
BUILTIN_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # 13 to 19 digits, single spaces or dashes between them allowed: card numbers as typed
    "card": r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
}


class Redactor:
    """``redact(text)``: every match of the built-in and the given patterns becomes MASK."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        compiled = [re.compile(p) for p in BUILTIN_PATTERNS.values()]
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error:  # checked with the recipe; an older row may still hold one
                log.error("capture: redact pattern %r does not compile; ignored", pattern)
        self._patterns = compiled

    def redact(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(MASK, text)
        return text

    def clean(self, text: str | None, max_chars: int) -> str | None:
        """``text`` redacted, then cut to ``max_chars``."""
        if text is None:
            return None
        return self.redact(text)[:max_chars]


@lru_cache(maxsize=16)
def redactor_for(patterns: tuple[str, ...]) -> Redactor:
    """One redactor per pattern list (compiled once per worker)."""
    return Redactor(patterns)
