"""The capture recorder in-process, with real Parquet files: redaction before writing, the
cut, rotation by size, one day per file, retention, dead drafts swept, a failing disk that
stops the capture (and says so) while submitting never blocks, and a full queue that drops
and counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conveyor.capture_format import CAPTURE_SCHEMA, capture_root, published_files
from conveyor.serving_spec import CaptureSpec
from serving.worker.capture import CaptureRecorder, Exchange
from serving.worker.capture_rows import rows_of
from serving.worker.redaction import MASK, Redactor

ON = CaptureSpec(enabled=True, rotate_seconds=3600)


def _exchange(text: str, answer: str = "timer", **more: object) -> Exchange:
    return Exchange("dep:v1", "active", "shop", "classify", 200, 3.5, text, answer, **more)  # type: ignore[arg-type]


def _rows(home: Path) -> list[dict[str, object]]:
    files = published_files(capture_root(home, "dep"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_builtin_and_recipe_patterns_are_redacted_and_a_cut_never_splits_a_match() -> None:
    redactor = Redactor([r"order-\d+"])
    text = "mail ann.lee@example.co.uk, card 4111 1111 1111 1111 or 5500-0000-0000-0004, order-991"
    said = redactor.redact(text)
    assert "example" not in said and "4111" not in said and "5500" not in said
    assert "order-991" not in said and said.count(MASK) == 4
    assert redactor.redact("call 555 0100 at 10:30, 12 items") == "call 555 0100 at 10:30, 12 items"
    # the e-mail sits across the cut: redacted first, so no part of it survives the cut
    assert redactor.clean("write to bob@example.com", 12) == "write to " + MASK[:3]


def test_chat_rows_keep_their_messages_as_json_each_redacted_and_cut() -> None:
    spec = CaptureSpec(enabled=True, max_text_chars=20)
    turns = (("system", "be brief"), ("user", "I am eve@corp.io and this is long text"))
    row = rows_of(spec, time.time(), [_exchange(turns, "ok")], "dep", "w")[0]  # type: ignore[arg-type]
    assert row["request"] == (
        '[{"role": "system", "content": "be brief"}, '
        '{"role": "user", "content": "I am [REDACTED] and "}]'
    )


def test_rows_are_written_published_on_stop_and_read_back_whole(tmp_path: Path) -> None:
    recorder = CaptureRecorder(tmp_path, "dep", "host:1:0")
    recorder.submit(ON, [_exchange(f"set a timer {i}", score=0.5) for i in range(3)])
    recorder.submit(ON, [_exchange("reach me at a@b.org", tokens_in=3, cache_hit=True)])
    recorder.stop()
    files = published_files(capture_root(tmp_path, "dep"))
    assert len(files) == 1 and pq.read_schema(files[0]).equals(CAPTURE_SCHEMA)
    rows = _rows(tmp_path)
    assert [r["request"] for r in rows] == [
        *(f"set a timer {i}" for i in range(3)),
        f"reach me at {MASK}",
    ]
    assert rows[3]["cache_hit"] is True and rows[3]["tokens_in"] == 3 and rows[0]["score"] == 0.5
    assert {r["worker"] for r in rows} == {"host:1:0"} and len({r["id"] for r in rows}) == 4
    assert recorder.state.written == 4 and recorder.state.files == 1
    assert not list(capture_root(tmp_path, "dep").rglob(".part-*"))  # no draft left behind


def test_files_rotate_by_size(tmp_path: Path) -> None:
    spec = CaptureSpec(enabled=True, rotate_mb=0.02, rotate_seconds=3600)
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    for _ in range(12):
        recorder.submit(spec, [_exchange(os.urandom(1500).hex()) for _i in range(4)])
        time.sleep(0.15)  # a flush per second: several row groups
    recorder.stop()
    files = published_files(capture_root(tmp_path, "dep"))
    assert len(files) >= 2, [f.stat().st_size for f in files]
    assert sum(pq.read_metadata(f).num_rows for f in files) == 48


def test_files_rotate_by_age_so_rows_become_queryable_without_a_stop(tmp_path: Path) -> None:
    spec = CaptureSpec(enabled=True, rotate_seconds=0.5)
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    recorder.submit(spec, [_exchange("set a timer")])
    deadline = time.monotonic() + 10
    while not published_files(capture_root(tmp_path, "dep")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_rows(tmp_path)) == 1
    recorder.stop()


def test_retention_deletes_old_days_and_sweeps_drafts_of_dead_writers(tmp_path: Path) -> None:
    root = capture_root(tmp_path, "dep")
    old_day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    kept_day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for day in (old_day, kept_day):
        (root / f"day={day}").mkdir(parents=True)
        (root / f"day={day}" / "part-x.parquet").write_bytes(b"")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(dead.stdout)
    dead_draft = root / f"day={kept_day}" / f".part-1-w-p{dead_pid}-0.tmp"
    live_draft = root / f"day={kept_day}" / f".part-1-w-p{os.getpid()}-9.tmp"
    dead_draft.write_bytes(b"PAR1 half")
    live_draft.write_bytes(b"PAR1 half")
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    recorder.submit(CaptureSpec(enabled=True, retention_days=2), [_exchange("set a timer")])
    recorder.stop()
    assert not (root / f"day={old_day}").exists()
    assert (root / f"day={kept_day}" / "part-x.parquet").exists()
    assert not dead_draft.exists() and live_draft.exists()


def test_a_failing_disk_stops_the_capture_says_so_and_submitting_never_blocks(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "home"
    blocked.mkdir()
    (blocked / "capture").write_text("a file where the capture's folder would be")
    counted: dict[str, int] = {}
    recorder = CaptureRecorder(
        blocked, "dep", "w", count=lambda o, n: counted.__setitem__(o, counted.get(o, 0) + n)
    )
    started = time.perf_counter()
    for _ in range(200):
        recorder.submit(ON, [_exchange("set a timer")])
    assert time.perf_counter() - started < 0.5
    deadline = time.monotonic() + 10
    while recorder.state.stopped is None and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.stop()
    assert recorder.state.stopped is not None and "Error" in recorder.state.stopped
    assert recorder.state.written == 0 and recorder.state.lost == 200 == counted["lost"]


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    spec = CaptureSpec(enabled=True, max_pending=5, rotate_seconds=3600)
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    recorder._thread = object()  # type: ignore[assignment]  # no writer: the queue only fills
    for _ in range(8):
        recorder.submit(spec, [_exchange("set a timer")])
    assert recorder.state.dropped == 3


@pytest.mark.parametrize(
    ("sample", "low", "high"), [(0.0, 0, 0), (0.25, 150, 350), (1.0, 1000, 1000)]
)
def test_the_sample_draw_follows_the_rate(
    tmp_path: Path, sample: float, low: int, high: int
) -> None:
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    spec = CaptureSpec(enabled=True, sample=sample)
    drawn = sum(recorder.sampled(spec) for _ in range(1000))
    assert low <= drawn <= high
    assert not recorder.sampled(CaptureSpec(enabled=False, sample=1.0))
