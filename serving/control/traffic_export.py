"""Captured traffic as a data split in the recipe's own format, for review and retraining.

Each exported row is a training example whose label (or assistant turn) is the model's own
answer, a draft for a person to review, and carries its provenance: which captured row,
version, app and moment it came from. Only answered rows (status 200, an answer) export.
The format comes in as plain values (the CLI reads them from the version's recipe):
``text`` rows name their text and label fields; ``chat`` rows are ``messages`` (chat
requests) or ``prompt`` + ``completion`` (completion requests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from conveyor.capture_format import PROVENANCE_SOURCE
from serving.control.traffic import TrafficError, TrafficQuery, select_rows

__all__ = ["ExportFormat", "export_traffic", "training_row"]

ANSWERED = "status = 200 AND answer IS NOT NULL AND answer <> ''"


@dataclass(frozen=True)
class ExportFormat:
    """The recipe's data format, as plain values."""

    kind: Literal["text", "chat"]
    text_field: str = "text"
    label_field: str | None = "label"


def _provenance(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": PROVENANCE_SOURCE,
        "capture_id": row["id"],
        "deployment": row["deployment"],
        "version": row["version"],
        "app": row["app"],
        "ts": row["ts"].isoformat(),
        "label_is_draft": True,  # the model's own answer: review before training on it
    }


def training_row(row: dict[str, Any], fmt: ExportFormat) -> dict[str, Any] | None:
    """One captured row as a training example, or None when it does not fit ``fmt``."""
    endpoint, request, answer = row["endpoint"], row["request"], row["answer"]
    if fmt.kind == "text":
        if endpoint != "classify" or fmt.label_field is None:
            return None
        example: dict[str, Any] = {fmt.text_field: request, fmt.label_field: answer}
    elif endpoint == "chat":
        messages = json.loads(request)
        example = {"messages": [*messages, {"role": "assistant", "content": answer}]}
    elif endpoint == "completion":
        example = {"prompt": request, "completion": answer}
    else:
        return None
    return example | {"provenance": _provenance(row)}


def _written(rows: Iterable[dict[str, Any]], fmt: ExportFormat, to: Path) -> int:
    """Write whole, then rename: ``to`` is never half a file."""
    to.parent.mkdir(parents=True, exist_ok=True)
    draft = to.with_name(f".{to.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with draft.open("w", encoding="utf-8") as out:
            for row in rows:
                example = training_row(row, fmt)
                if example is not None:
                    out.write(json.dumps(example, ensure_ascii=False) + "\n")
                    count += 1
        os.replace(draft, to)
    finally:
        draft.unlink(missing_ok=True)
    return count


def export_traffic(home: Path, query: TrafficQuery, fmt: ExportFormat, to: Path) -> int:
    """Write the answered rows ``query`` selects to ``to`` (JSONL); how many were written.

    TrafficError when none fit (nothing is written then)."""
    if to.suffix != ".jsonl":
        raise TrafficError(f"--to {to}: exports are JSONL (name the file .jsonl)")
    where = f"({query.where}) AND {ANSWERED}" if query.where else ANSWERED
    rows = select_rows(home, replace(query, where=where))
    fitting = [row for row in rows if training_row(row, fmt) is not None]
    if not fitting:
        raise TrafficError(
            f"no answered {fmt.kind} rows of {query.deployment} match: nothing exported "
            "(is serving.capture.enabled on, and has the capture published a file yet?)"
        )
    return _written(fitting, fmt, to)
