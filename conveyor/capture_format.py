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

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = [
    "CAPTURE_SCHEMA",
    "PROVENANCE_SOURCE",
    "captured_lineage",
    "CAPTURE_SCHEMA_VERSION",
    "DRAFT_SUFFIX",
    "capture_root",
    "day_folder",
    "day_of",
    "draft_pid",
    "published_files",
]

CAPTURE_SCHEMA_VERSION = 1
PROVENANCE_SOURCE = "conveyor-capture"  # an exported row's provenance.source
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


def captured_lineage(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """What each extra training file holds of the capture (a `conveyor traffic export`):
    its rows, how many came from the capture, the SHA-256 of their sorted capture ids (which
    captured rows trained the version) and the versions and apps that answered them."""
    found = []
    for path in paths:
        rows, ids, versions, apps = 0, [], set(), set()
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    rows += 1
                    provenance = json.loads(line).get("provenance")
                    if not isinstance(provenance, dict):
                        continue
                    if provenance.get("source") == PROVENANCE_SOURCE:
                        ids.append(str(provenance.get("capture_id")))
                        versions.add(str(provenance.get("version")))
                        apps.add(str(provenance.get("app")))
        digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
        found.append(
            {
                "path": str(path),
                "rows": rows,
                "captured_rows": len(ids),
                "capture_ids_sha256": digest if ids else None,
                "captured_from": sorted(versions),
                "apps": sorted(apps),
            }
        )
    return found
