"""The drift monitor's tokenization, on a thread of its own with a tokenizer of its own.

A fast (Rust) tokenizer keeps its padding and truncation settings on the instance: every call
sets them, then encodes. Two threads calling the same instance at once each see the other's
settings, and the batcher's padded call fails with ``Unable to create tensor, ... activate
truncation and/or padding`` (about 1% of requests under concurrent varied traffic, whole
batches at a time). So the batcher thread is the only one that calls a served model's
tokenizer; the input profile is tokenized here, on one thread, with a private copy made on
this thread (never on the event loop). The queue is bounded: under overload the monitor
sees a sample of the traffic (``dropped`` counts what it did not see), never a slower request.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from serving.worker.profile import InputProfile, profile_of

__all__ = ["ProfileRecorder"]

log = logging.getLogger(__name__)
_KEPT_TOKENIZERS = 4  # active, canary, standby and one just replaced

Record = Callable[[str, InputProfile], None]
_Job = tuple[str, Any, Sequence[str], Sequence[Mapping[str, Any]]]


class ProfileRecorder:
    """``submit(version, tokenizer, texts, results)`` returns at once; a thread profiles."""

    def __init__(self, record: Record, max_pending: int = 4096) -> None:
        self._record = record
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_pending)
        self._copies: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="conveyor-profile", daemon=True)
        self._thread.start()

    def submit(
        self,
        version: str,
        tokenizer: Any,
        texts: Sequence[str],
        results: Sequence[Mapping[str, Any]],
    ) -> None:
        try:
            self._queue.put_nowait((version, tokenizer, list(texts), list(results)))
        except queue.Full:
            self.dropped += 1

    def wait_idle(self) -> None:
        """Until everything submitted so far is recorded (tests, shutdown)."""
        self._queue.join()

    def stop(self) -> None:
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            return
        self._thread.join(timeout=5)

    def _own(self, tokenizer: Any) -> Any:
        """This thread's copy of ``tokenizer`` (made here, kept while the version is recent).

        The original is kept beside its copy, so its ``id`` cannot be reused by another."""
        key = id(tokenizer)
        if key in self._copies:
            self._copies.move_to_end(key)
            return self._copies[key][1]
        mine = copy.deepcopy(tokenizer)
        self._copies[key] = (tokenizer, mine)
        while len(self._copies) > _KEPT_TOKENIZERS:
            self._copies.popitem(last=False)
        return mine

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._profile(*job)
            finally:
                self._queue.task_done()

    def _profile(
        self,
        version: str,
        tokenizer: Any,
        texts: Sequence[str],
        results: Sequence[Mapping[str, Any]],
    ) -> None:
        try:
            mine = self._own(tokenizer)
            ids = mine(list(texts), add_special_tokens=False)["input_ids"]
            unk = getattr(mine, "unk_token_id", None)
            self._record(version, profile_of(texts, results, ids, unk))
        except Exception:  # the monitor's figures must never fail a request
            self.failed += 1
            log.warning("could not profile a request to %s", version, exc_info=True)
