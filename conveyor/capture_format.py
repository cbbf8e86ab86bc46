"""The capture's shared format: where each deployment's captured traffic lies, and its columns.

Serving workers write it (``serving.worker.capture``) and ``conveyor traffic`` reads it
(``serving.control.traffic``); it lives in the core because both sides read it, and a
packaged Bento ships ``conveyor`` and ``serving`` only.

Layout: ``HOME/capture/DEPLOYMENT/day=YYYY-MM-DD/part-*.parquet``, one folder per UTC day
(retention deletes whole days), each file holding rows of its own day only. A file is
written as a hidden draft (``.part-*.tmp``) and renamed to its ``.parquet`` name only once
closed: a reader never sees a file in the middle of being written, and a killed worker
leaves only a draft, which no query reads.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

__all__ = [
    "CAPTURE_SCHEMA",
    "CAPTURE_SCHEMA_VERSION",
    "DRAFT_SUFFIX",
    "capture_root",
    "day_folder",
    "day_of",
    "draft_pid",
    "published_files",
]

CAPTURE_SCHEMA_VERSION = 1
DRAFT_SUFFIX = ".tmp"
_DAY = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")
_DRAFT = re.compile(r"^\.part-.*-p(\d+)-.*\.tmp$")

# One row per text of /classify, per answer of the OpenAI routes. Texts are redacted and cut
# to the version's serving.capture.max_text_chars before they are written. For chat,
# ``request`` is the JSON list of the messages ({"role", "content"}), each redacted and cut.
CAPTURE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # the row's own id (export provenance)
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),  # when it was answered
        pa.field("deployment", pa.string(), nullable=False),
        pa.field("version", pa.string()),
        pa.field("role", pa.string()),  # active, canary, standby or pinned
        pa.field("app", pa.string()),  # the key's app ("-" without keys)
        pa.field("endpoint", pa.string()),  # classify, chat or completion
        pa.field("status", pa.int16()),  # the HTTP status the client got
        pa.field("latency_ms", pa.float64()),
        pa.field("ttft_ms", pa.float64()),  # language models: time to the first token
        pa.field("tokens_in", pa.int32()),
        pa.field("tokens_out", pa.int32()),
        pa.field("finish_reason", pa.string()),  # stop, length, cancelled; null for classify
        pa.field("cache_hit", pa.bool_()),
        pa.field("request", pa.string()),
        pa.field("answer", pa.string()),  # the label, or the generated text
        pa.field("score", pa.float64()),  # classify: the label's score
        pa.field("worker", pa.string()),
    ]
)


def capture_root(home: Path, deployment: str) -> Path:
    """The folder holding a deployment's capture (every worker's, every day)."""
    return home / "capture" / deployment


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_folder(root: Path, day: date) -> Path:
    return root / f"day={day.isoformat()}"


def draft_pid(name: str) -> int | None:
    """The process id a draft's name carries (its writer), or None for any other name."""
    match = _DRAFT.match(name)
    return int(match.group(1)) if match else None


def published_files(root: Path, since: datetime | None = None) -> list[Path]:
    """Every closed capture file under ``root``, oldest day first; with ``since``, only the
    days that may hold rows at or after it (rows are filtered by ``ts`` as well)."""
    if not root.is_dir():
        return []
    first = day_of(since) if since is not None else None
    files: list[Path] = []
    for folder in sorted(root.iterdir()):
        match = _DAY.match(folder.name)
        if match is None or not folder.is_dir():
            continue
        if first is not None and date.fromisoformat(match.group(1)) < first:
            continue
        files += sorted(p for p in folder.glob("part-*.parquet") if p.is_file())
    return files
