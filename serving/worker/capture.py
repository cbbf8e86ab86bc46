"""The capture: what one worker served, recorded off the request path, written as Parquet.

The request path does two cheap things: draw the sample (:meth:`CaptureRecorder.sampled`)
and put the raw exchange on a bounded queue (:meth:`CaptureRecorder.submit`); when the queue
is full the exchange is dropped and counted, never waited for. This thread redacts and cuts
the texts (:mod:`serving.worker.redaction`), appends row groups to a hidden draft file and
publishes it by rename when it reaches the version's ``rotate_mb`` or ``rotate_seconds``
(:mod:`conveyor.capture_format` says where). A write that fails (a full disk) stops the
capture, says so in the log, the metrics and ``/v1/status``, and serving goes on; it is
tried again a minute later.

A version whose ``sink`` is a Postgres URL has its rows copied into that database instead
(:mod:`serving.worker.capture_postgres`), by this same thread, once a second. While the
database is down or cut the connection, what was held and what arrives is dropped and
counted as lost, and ``stopped`` says why; the sink is tried again, on a new connection,
``RETRY_SECONDS`` later.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.capture_format import capture_root, day_folder, day_of, draft_pid
from conveyor.capture_sink import is_postgres
from conveyor.serving_spec import CaptureSpec
from serving.worker.capture_postgres import PostgresSink
from serving.worker.capture_rows import Exchange, rows_of
from serving.worker.capture_writer import DraftFile

__all__ = ["CaptureRecorder", "Exchange"]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0  # rows wait at most this long in memory before joining the draft
DRAIN_SECONDS = 0.25  # how often the thread takes what the request path queued
FLUSH_ROWS = 4096
RETRY_SECONDS = 60.0  # after a failed write, the capture tries again this much later
SWEEP_SECONDS = 3600.0  # how often retention is applied
QUEUE_BOUND = 100_000  # the queue's own bound; each version's max_pending applies below it

Count = Callable[[str, int], None]
_Job = tuple[CaptureSpec, float, Sequence[Exchange]]


def _no_count(outcome: str, n: int) -> None:
    return None


@dataclass
class CaptureState:
    """What the capture did so far (counted by its thread, read by ``/v1/status``)."""

    written: int = 0  # rows in published files
    dropped: int = 0  # the queue was full: never a slower answer
    lost: int = 0  # not written: the capture was stopped (a failed write, Postgres down)
    files: int = 0
    stopped: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "dropped": self.dropped,
            "lost": self.lost,
            "files": self.files,
            "stopped": self.stopped,
        }


class CaptureRecorder:
    """One per worker: ``submit`` returns at once, a thread writes the deployment's files."""

    def __init__(self, home: Path, deployment: str, worker: str, count: Count = _no_count):
        self.root = capture_root(home, deployment)
        self.deployment = deployment
        self.worker = worker
        self.state = CaptureState()
        self._count = count
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=QUEUE_BOUND)
        self._draft: DraftFile | None = None
        self._rows: list[dict[str, Any]] = []
        self._spec = CaptureSpec()
        self._last_flush = time.monotonic()
        self._retry_at = 0.0
        self._next_sweep = math.inf  # retention applies once a record says the version's
        self._sinks: dict[str, PostgresSink] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set only to stop: the thread drains on its own clock

    # -- the request path ------------------------------------------------------------------

    def sampled(self, spec: CaptureSpec) -> bool:
        """Whether this request is recorded: the version captures, and the draw says so."""
        return spec.enabled and (spec.sample >= 1.0 or random.random() < spec.sample)

    def submit(self, spec: CaptureSpec, exchanges: Sequence[Exchange]) -> None:
        """Hand over what was answered; never blocks (a full queue drops and counts it)."""
        if self._thread is None:
            self._start()
        if self._queue.qsize() >= spec.max_pending:
            self._drop(len(exchanges))
            return
        try:
            self._queue.put_nowait((spec, time.time(), exchanges))
        except queue.Full:
            self._drop(len(exchanges))

    def _drop(self, n: int) -> None:
        self.state.dropped += n
        self._count("dropped", n)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="conveyor-capture", daemon=True
                )
                self._thread.start()

    # -- the capture's thread --------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Write and publish what is pending, then end the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            return
        self._wake.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        """Every DRAIN_SECONDS, take whatever is queued at once: the request path never
        wakes this thread (one wake-up per request would contend for the GIL with it)."""
        self._sweep(retention=False)  # the retention is the versions': known from a record on
        while True:
            self._wake.wait(DRAIN_SECONDS)
            for job in self._drain():
                if job is None:
                    self._tick()  # retention too, when it is due
                    self._guarded(self._publish)
                    self._write_postgres(final=True)
                    for sink in self._sinks.values():
                        sink.close()
                    return
                self._take(*job)
            self._tick()

    def _drain(self) -> list[_Job | None]:
        jobs: list[_Job | None] = []
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                return jobs

    def _take(self, spec: CaptureSpec, at: float, exchanges: Sequence[Exchange]) -> None:
        if is_postgres(spec.sink):
            self._take_postgres(spec, at, exchanges)
            return
        if self.state.stopped is not None and time.monotonic() < self._retry_at:
            self.state.lost += len(exchanges)
            self._count("lost", len(exchanges))
            return
        self._spec = spec
        self._sweep_soon()
        rows = rows_of(spec, at, exchanges, self.deployment, self.worker)
        day = day_of(rows[0]["ts"]) if rows else None
        held = day_of(self._rows[0]["ts"]) if self._rows else None
        if held is None and self._draft is not None:
            held = self._draft.day
        if held is not None and day != held:  # a file holds one day's rows
            self._guarded(self._publish)
        self._rows += rows

    def _take_postgres(self, spec: CaptureSpec, at: float, exchanges: Sequence[Exchange]) -> None:
        sink = self._sinks.get(spec.sink)
        if sink is None:
            sink = self._sinks[spec.sink] = PostgresSink(spec.sink, self.deployment)
        if sink.resting():
            self._lose(len(exchanges))
            return
        self._spec = spec
        self._sweep_soon()
        sink.add(rows_of(spec, at, exchanges, self.deployment, self.worker))

    def _write_postgres(self, final: bool = False) -> None:
        for sink in self._sinks.values():
            if not (final and sink.rows) and not sink.due(FLUSH_SECONDS, FLUSH_ROWS):
                continue
            try:
                written = sink.write()
            except Exception as exc:  # down, cut, timed out: the capture's, never the answer's
                self._lose(sink.failed())
                if self.state.stopped is None:
                    log.error(
                        "capture of %s to Postgres stopped: %s; serving goes on, retrying",
                        self.deployment,
                        _one_line(exc),
                    )
                self.state.stopped = f"{type(exc).__name__}: {_one_line(exc)}"
                continue
            self.state.written += written
            self._count("written", written)
            if self.state.stopped is not None:
                log.warning("capture of %s writes to Postgres again", self.deployment)
                self.state.stopped = None

    def _lose(self, n: int) -> None:
        self.state.lost += n
        self._count("lost", n)

    def _sweep_soon(self) -> None:
        """Apply the retention on the next tick once a record says the version's, then
        every SWEEP_SECONDS (not on every record: a sweep lists folders, or deletes rows)."""
        if self._next_sweep == math.inf:
            self._next_sweep = time.monotonic()

    def _tick(self) -> None:
        """Flush rows into the draft when due; publish the draft when it is big or old."""
        self._write_postgres()
        due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if self._rows and (due or len(self._rows) >= FLUSH_ROWS):
            self._guarded(self._flush)
        draft = self._draft
        if draft is not None and (
            draft.size() >= self._spec.rotate_mb * 1_000_000
            or draft.age() >= self._spec.rotate_seconds
        ):
            self._guarded(self._publish)
        if time.monotonic() >= self._next_sweep:
            self._sweep(retention=True)

    def _flush(self) -> None:
        rows = self._rows
        self._last_flush = time.monotonic()
        if not rows:
            return
        if self._draft is None:
            day = day_of(rows[0]["ts"])
            self._draft = DraftFile.open(day_folder(self.root, day), day, self.worker)
        self._draft.append(rows)
        self._rows = []

    def _publish(self) -> None:
        self._flush()
        draft, self._draft = self._draft, None
        if draft is None:
            return
        try:
            draft.publish()
        except BaseException:
            self._draft = draft  # its rows are counted lost, and it is discarded
            raise
        self.state.written += draft.rows
        self.state.files += 1
        self._count("written", draft.rows)
        if self.state.stopped is not None:
            log.warning("capture of %s writes again", self.deployment)
            self.state.stopped = None

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run a write step; a failure stops the capture (serving goes on) and says why."""
        try:
            step()
        except Exception as exc:  # a full disk, a folder gone: the capture's, never the answer's
            lost = len(self._rows) + (self._draft.rows if self._draft is not None else 0)
            self._rows = []
            if self._draft is not None:
                self._draft.discard()
                self._draft = None
            self.state.lost += lost
            self._count("lost", lost)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if self.state.stopped is None:
                log.error(
                    "capture of %s stopped: %s; serving goes on, retrying in %.0f s",
                    self.deployment,
                    exc,
                    RETRY_SECONDS,
                )
            self.state.stopped = f"{type(exc).__name__}: {exc}"

    def _sweep(self, retention: bool) -> None:
        """Delete days past the retention and drafts whose writer is gone (a killed worker);
        a folder another worker removed meanwhile is no failure."""
        if retention:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
        try:
            self._sweep_folders(retention)
        except OSError:
            log.warning(
                "capture of %s: sweeping %s failed", self.deployment, self.root, exc_info=True
            )
        if retention:
            for sink in self._sinks.values():
                self._sweep_postgres(sink)

    def _sweep_postgres(self, sink: PostgresSink) -> None:
        if sink.resting():
            return
        try:
            deleted = sink.delete_older(self._spec.retention_days)
        except Exception as exc:  # down: the next sweep deletes them
            sink.close()
            log.warning("capture of %s: retention in Postgres failed: %s", self.deployment, exc)
            return
        if deleted:
            log.info("capture of %s: %d rows past the retention deleted", self.deployment, deleted)

    def _sweep_folders(self, retention: bool) -> None:
        if not self.root.is_dir():
            return
        oldest = day_of(datetime.now(UTC) - timedelta(days=self._spec.retention_days))
        for folder in self.root.iterdir():
            if not folder.name.startswith("day=") or not folder.is_dir():
                continue
            if retention and folder.name < day_folder(self.root, oldest).name:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for draft in folder.glob(".part-*"):
                pid = draft_pid(draft.name)
                if pid is not None and not _alive(pid):
                    draft.unlink(missing_ok=True)


def _one_line(exc: BaseException) -> str:
    said = str(exc).strip()
    return said.splitlines()[0] if said else type(exc).__name__


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
