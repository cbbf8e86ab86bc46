"""Output text of one request, token by token: whole UTF-8 characters only, and stop strings.

Decoding a window of tokens (from the last emitted boundary) and holding back text that ends
in U+FFFD means a character split over several byte-level tokens is emitted whole, once its
last byte arrives. Text that could be the start of a stop string is held until it is known
not to be one; on a match the output ends just before it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TextState"]

_REPLACEMENT = "\ufffd"


class TextState:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self._prefix = 0  # first token of the decode window
        self._read = 0  # tokens before this one are already text
        self.emitted = ""  # text handed out
        self._held = ""  # decoded, not handed out: maybe the start of a stop string

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _new_text(self) -> str:
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) <= len(before) or after.endswith(_REPLACEMENT):
            return ""  # a character still incomplete: wait for its next byte
        self._prefix, self._read = self._read, len(self.ids)
        return after[len(before) :]

    def add(self, token: int) -> tuple[str, bool]:
        """The text to emit after ``token``, and whether a stop string ended the output."""
        self.ids.append(token)
        self._held += self._new_text()
        if not self.stop or not self._held:
            return self._release(len(self._held)), False
        text = self.emitted + self._held
        start = len(self.emitted)  # a match never begins in emitted text: it was held back
        matches = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
        if matches:
            return self._release(min(matches) - len(self.emitted)), True
        return self._release(len(self._held) - self._partial_stop()), False

    def flush(self) -> str:
        """Everything held back (the output ended without completing a stop string)."""
        return self._release(len(self._held))

    def _partial_stop(self) -> int:
        """Length of the longest end of the held text that begins some stop string."""
        for size in range(min(len(self._held), max(len(s) - 1 for s in self.stop)), 0, -1):
            tail = self._held[-size:]
            if any(s.startswith(tail) for s in self.stop):
                return size
        return 0

    def _release(self, count: int) -> str:
        out, self._held = self._held[:count], self._held[count:]
        self.emitted += out
        return out
