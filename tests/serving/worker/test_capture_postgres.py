"""The capture recorder writing to a real Postgres sink, in-process: two replicas into one
table, read back by `conveyor traffic`'s queries (filters pushed down, ``--sql`` still
confined to the capture), retention in days, and a sink that is down or goes down: rows are
dropped and counted, submitting never blocks, and writing resumes when it comes back."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from conveyor.capture_format import capture_root
from conveyor.capture_sink import CAPTURE_TABLE
from conveyor.errors import ConveyorError
from conveyor.serving_spec import CaptureSpec
from serving.control.traffic import TrafficError, TrafficQuery, run_sql, select_rows, summarize
from serving.worker.capture import CaptureRecorder, Exchange
from serving.worker.capture_postgres import RETRY_SECONDS

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _exchange(text: str, version: str = "dep:v1", app: str = "shop", **more: object) -> Exchange:
    return Exchange(version, "active", app, "classify", 200, 3.5, text, "timer", **more)  # type: ignore[arg-type]


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(f"SELECT count(*) FROM {CAPTURE_TABLE}").fetchone()
    return int(found[0]) if found else 0


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.1)


def test_two_replicas_write_one_table_that_traffic_queries_read_back(
    tmp_path: Path, capture_db: str
) -> None:
    spec = CaptureSpec(enabled=True, sink=capture_db)
    first = CaptureRecorder(tmp_path / "host-a", "dep", "host-a:1:0")
    second = CaptureRecorder(tmp_path / "host-b", "dep", "host-b:1:0")
    for i in range(20):
        first.submit(spec, [_exchange(f"set a timer {i}, mail a@b.org", score=0.5)])
        second.submit(spec, [_exchange(f"play jazz {i}", "dep:v2", "crm", cache_hit=True)])
    first.stop()
    second.stop()
    assert first.state.written == second.state.written == 20 and _count(capture_db) == 40
    assert not capture_root(tmp_path / "host-a", "dep").exists()  # nothing under the home

    home = tmp_path / "cli"
    query = TrafficQuery("dep", since=timedelta(hours=1), sinks=(capture_db,))
    summary = {row["app"]: row for row in summarize(home, query)}
    assert (summary["shop"]["version"], summary["shop"]["requests"]) == ("dep:v1", 20)
    assert (summary["crm"]["requests"], summary["crm"]["cache_hits"]) == (20, 20)
    narrowed = replace(query, version="v2", app="crm", where="request LIKE '%jazz 1%'")
    rows = select_rows(home, narrowed)
    assert sorted(r["request"] for r in rows) == ["play jazz 1"] + [
        f"play jazz {i}" for i in range(10, 20)
    ]
    assert {r["worker"] for r in rows} == {"host-b:1:0"}
    # --sql sees the whole capture (every version) even when --version narrows `traffic`
    sql = "SELECT (SELECT count(*) FROM capture), (SELECT count(*) FROM traffic)"
    _, counted = run_sql(home, TrafficQuery("dep", version="v1", sinks=(capture_db,)), sql)
    assert counted == [(40, 20)]
    _, scored = run_sql(home, query, "SELECT DISTINCT request FROM traffic WHERE score > 0")
    assert all(text.endswith("mail [REDACTED]") for (text,) in scored) and len(scored) == 20
    # DuckDB holds only the rows read: it cannot reach Postgres, load an extension or attach
    with pytest.raises(TrafficError, match="postgres_scan does not exist"):
        run_sql(home, query, f"SELECT * FROM postgres_scan('{capture_db}', 'public', 'x')")
    with pytest.raises(TrafficError, match="ATTACH statement is refused"):
        run_sql(home, query, f"ATTACH '{capture_db}' AS pg (TYPE postgres)")


def test_a_sink_without_a_table_yet_reads_as_no_traffic(tmp_path: Path, capture_db: str) -> None:
    assert summarize(tmp_path, TrafficQuery("dep", sinks=(capture_db,))) == []


def test_a_sink_that_cannot_be_read_is_one_line_naming_postgres(tmp_path: Path) -> None:
    down = TrafficQuery("dep", sinks=("postgresql://postgres@127.0.0.1:1/none",))
    with pytest.raises(ConveyorError) as caught:
        summarize(tmp_path, down)
    said = str(caught.value)
    assert said.startswith("cannot read the capture in Postgres: ") and "\n" not in said


def test_retention_deletes_the_deployments_rows_older_than_its_days(
    tmp_path: Path, capture_db: str
) -> None:
    spec = CaptureSpec(enabled=True, sink=capture_db, retention_days=2)
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    recorder.submit(spec, [_exchange("set a timer")])
    recorder.stop()
    old = datetime.now(UTC) - timedelta(days=3)
    with psycopg.connect(capture_db) as conn:
        for n, deployment in enumerate(("dep", "other")):
            conn.execute(
                f"INSERT INTO {CAPTURE_TABLE} (id, ts, deployment) VALUES (%s, %s, %s)",
                (f"old-{n}", old, deployment),
            )
    later = CaptureRecorder(tmp_path, "dep", "w")
    later.submit(spec, [_exchange("play jazz")])
    later.stop()
    with psycopg.connect(capture_db) as conn:
        left = conn.execute(f"SELECT id FROM {CAPTURE_TABLE} WHERE id LIKE 'old-%'").fetchall()
    assert left == [("old-1",)]  # another deployment's rows keep their own retention
    assert _count(capture_db) == 3


def test_a_sink_that_is_down_drops_and_counts_and_submitting_never_blocks(
    tmp_path: Path,
) -> None:
    counted: dict[str, int] = {}
    spec = CaptureSpec(enabled=True, sink="postgresql://postgres@127.0.0.1:1/none")
    recorder = CaptureRecorder(
        tmp_path, "dep", "w", count=lambda o, n: counted.__setitem__(o, counted.get(o, 0) + n)
    )
    started = time.perf_counter()
    for _ in range(200):
        recorder.submit(spec, [_exchange("set a timer")])
    assert time.perf_counter() - started < 0.5
    _wait(lambda: recorder.state.stopped is not None)
    recorder.stop()
    stopped = recorder.state.stopped
    assert stopped is not None and "OperationalError" in stopped, stopped
    assert recorder.state.written == 0 and recorder.state.lost == 200 == counted["lost"]


def test_a_sink_cut_off_mid_run_drops_and_counts_then_writes_again(
    tmp_path: Path, capture_db: str
) -> None:
    """The sink's connection terminated and its database closed to new connections (an
    outage as the worker sees it), then opened again: rows meanwhile are lost and counted,
    and the capture reconnects by itself."""
    database = capture_db.rsplit("/", 1)[1]
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    spec = CaptureSpec(enabled=True, sink=capture_db)
    recorder = CaptureRecorder(tmp_path, "dep", "w")
    recorder.submit(spec, [_exchange("before 1"), _exchange("before 2")])
    _wait(lambda: recorder.state.written == 2)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'conveyor-capture'",
            (database,),
        )
    outage = time.monotonic()
    while recorder.state.stopped is None and time.monotonic() - outage < 20:
        recorder.submit(spec, [_exchange("during")])
        time.sleep(0.05)
    assert recorder.state.stopped is not None and recorder.state.lost > 0
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + RETRY_SECONDS + 20
    while recorder.state.stopped is not None and time.monotonic() < deadline:
        recorder.submit(spec, [_exchange("after")])
        time.sleep(0.1)
    recorder.submit(spec, [_exchange("after")])
    recorder.stop()
    assert recorder.state.stopped is None
    with psycopg.connect(capture_db) as conn:
        got = conn.execute(f"SELECT request, count(*) FROM {CAPTURE_TABLE} GROUP BY 1").fetchall()
    by_text = dict(got)
    assert by_text["before 1"] == by_text["before 2"] == 1 and by_text["after"] >= 1
    sent = recorder.state.written + recorder.state.lost
    assert recorder.state.written == _count(capture_db) and sent == sum(by_text.values()) + (
        recorder.state.lost
    )
