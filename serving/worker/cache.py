"""The prediction cache: LRU per worker, keyed by (model version, top_k, normalized text).

The version is part of every key, and a request looks up only the version that answers it,
so a promotion or rollback can never serve another version's cached answer: the new
version's keys simply miss until it has answered them. The same holds for the cache shared
through Redis (:mod:`serving.worker.cache_redis`); both meet the :class:`Cache` protocol.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

__all__ = ["Cache", "PredictionCache", "normalize"]

Key = tuple[str, int, str]


def normalize(text: str) -> str:
    """Whitespace collapsed and trimmed; case is kept (a cased tokenizer sees it)."""
    return " ".join(text.split())


class Cache(Protocol):
    """What the runtime needs of a prediction cache (counts are per text, in this worker)."""

    @property
    def backend(self) -> str: ...

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    @property
    def errors(self) -> int: ...

    def __len__(self) -> int: ...

    def get_many(
        self, version: str, top_k: int, texts: list[str]
    ) -> list[dict[str, Any] | None]: ...

    def put_many(
        self, version: str, top_k: int, texts: list[str], answers: list[dict[str, Any]]
    ) -> None: ...


class PredictionCache:
    """At most ``max_entries`` answers; the least recently used goes first. 0 turns it off.

    ``len()`` is the entries this worker holds; ``errors`` is always 0 (nothing to reach).
    """

    backend = "local"
    errors = 0

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, version: str, top_k: int, texts: list[str]) -> list[dict[str, Any] | None]:
        """The cached answer for each text, or None where it must be computed."""
        if self.max_entries == 0:
            return [None] * len(texts)
        found: list[dict[str, Any] | None] = []
        with self._lock:
            for text in texts:
                key = (version, top_k, normalize(text))
                answer = self._entries.get(key)
                if answer is not None:
                    self._entries.move_to_end(key)
                found.append(answer)
            hits = sum(a is not None for a in found)
            self.hits += hits
            self.misses += len(found) - hits
        return found

    def put_many(
        self, version: str, top_k: int, texts: list[str], answers: list[dict[str, Any]]
    ) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            for text, answer in zip(texts, answers, strict=True):
                key = (version, top_k, normalize(text))
                self._entries[key] = answer
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
