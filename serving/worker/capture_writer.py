"""One capture file being written: a hidden draft that becomes visible only when whole.

Row groups are appended to ``.part-…-p<pid>-….tmp``; :meth:`DraftFile.publish` closes the
Parquet footer and renames it to ``part-….parquet`` in the same
folder (an atomic rename). A worker killed mid-write leaves a draft no query reads, which
the next capture thread to sweep the folder deletes once its writer is gone.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.capture_format import CAPTURE_SCHEMA, DRAFT_SUFFIX

__all__ = ["DraftFile"]

_SEQUENCE = itertools.count()
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class DraftFile:
    day: date
    draft: Path
    final: Path
    writer: pq.ParquetWriter
    rows: int = 0
    opened: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, folder: Path, day: date, worker: str) -> DraftFile:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        who = _UNSAFE.sub("_", worker)
        stem = f"part-{stamp}-{who}-p{os.getpid()}-{next(_SEQUENCE)}"
        draft = folder / f".{stem}{DRAFT_SUFFIX}"
        writer = pq.ParquetWriter(draft, CAPTURE_SCHEMA, compression="zstd")
        return cls(day, draft, folder / f"{stem}.parquet", writer)

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.writer.write_table(pa.Table.from_pylist(rows, schema=CAPTURE_SCHEMA))
        self.rows += len(rows)

    def size(self) -> int:
        try:
            return self.draft.stat().st_size
        except OSError:
            return 0

    def age(self) -> float:
        return time.monotonic() - self.opened

    def publish(self) -> None:
        """Close the footer and rename into view. No fsync: a killed process loses nothing
        the kernel already has, and a sync per file stalled the worker's other writes (its
        access log) on a busy disk; a machine that loses power may lose the newest files."""
        self.writer.close()
        os.replace(self.draft, self.final)

    def discard(self) -> None:
        try:
            self.writer.close()
        except Exception:  # a writer that failed mid-write may not close
            pass
        self.draft.unlink(missing_ok=True)
