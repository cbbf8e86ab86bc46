"""The capture against a real `bentoml serve`: traffic from two apps on /classify and on the
OpenAI chat route is recorded per version and app, redacted, and answered by the real
`conveyor traffic` command (summary, --where, --sql, export); a server killed with kill -9
in the middle of writing leaves no capture file that does not read whole, and the next
worker sweeps the dead draft away.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from conveyor.capture_format import capture_root, draft_pid, published_files
from conveyor.errors import ExitCode
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.clinc import clinc_texts
from testbed.live_server import running_server, wait_ready
from testbed.paths import REPO_ROOT
from testbed.tiny_models import write_tiny_llama
from testbed.versions import DEPLOYMENT, make_version, register_llm

pytestmark = pytest.mark.integration
FAST = {"enabled": True, "rotate_seconds": 0.5, "redact": [r"order-\d+"]}


def _post(port: int, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def _metrics(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    values = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            values.append(float(line.rsplit(" ", 1)[1]))
    assert len(values) == 1, (name, labels, values)
    return values[0]


def conveyor(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_HOME": str(settings.home)}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


def _summary(settings: Settings, *args: str) -> list[dict[str, Any]]:
    result = conveyor(settings, "traffic", DEPLOYMENT, "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _wait_for_rows(settings: Settings, wanted: int, timeout: float = 30) -> int:
    root = capture_root(settings.home, DEPLOYMENT)
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        rows = sum(pq.read_metadata(f).num_rows for f in published_files(root))
        if rows >= wanted:
            return rows
        time.sleep(0.25)
    return rows


def test_classify_traffic_from_two_apps_is_captured_and_queried_per_app_and_version(
    registry: Registry, settings: Settings, tokenizer: Any, tmp_path: Path
) -> None:
    version = make_version(registry, settings, tokenizer, 0, serving={"capture": FAST})
    promote(registry, version, canary_percent=0, timeout=5)
    _, shop = registry.create_api_key("shop", [DEPLOYMENT])
    _, crm = registry.create_api_key("crm", [DEPLOYMENT])
    texts = list(clinc_texts()[:12])
    with running_server(settings.model_copy(update={"require_api_key": True})) as server:
        for text in texts[:8]:
            assert _post(server.port, "/classify", {"text": text}, shop)[0] == 200
        status, _ = _post(server.port, "/classify", {"texts": texts[8:11]}, crm)
        assert status == 200
        mail = "reach me at ann@example.com about order-1234"
        assert _post(server.port, "/classify", {"text": mail}, crm)[0] == 200
        assert _post(server.port, "/classify", {"text": "x" * 2001}, crm)[0] == 422
        assert _wait_for_rows(settings, 13) == 13
        view = server.status()["capture"]
        metrics = _metrics(server.port)
    assert view["dropped"] == 0 and view["stopped"] is None
    assert _sample(metrics, "conveyor_capture_rows_total", outcome="written") == 13
    assert _sample(metrics, "conveyor_model_info", version=version, role="active") == 1
    assert _sample(metrics, "conveyor_canary_percent", deployment=DEPLOYMENT) == 0
    assert _sample(metrics, "conveyor_refusals_total", status="422", app="crm") == 1

    summary = {row["app"]: row for row in _summary(settings)}
    assert summary["shop"]["requests"] == 8 and summary["crm"]["requests"] == 5
    assert summary["crm"]["refused"] == 1 and summary["shop"]["refused"] == 0
    assert {row["version"] for row in summary.values()} == {version}
    assert summary["shop"]["p99_ms"] >= summary["shop"]["p50_ms"] > 0
    assert [r["app"] for r in _summary(settings, "--app", "crm", "--since", "1h")] == ["crm"]
    refused = _summary(settings, "--where", "status >= 400")
    assert [(r["app"], r["requests"]) for r in refused] == [("crm", 1)]
    assert _summary(settings, "--version", "v999") == []

    result = conveyor(
        settings,
        "traffic",
        DEPLOYMENT,
        "--json",
        "--sql",
        "SELECT request FROM traffic WHERE app = 'crm' ORDER BY ts",
    )
    requests = [row["request"] for row in json.loads(result.stdout)]
    assert "reach me at [REDACTED] about [REDACTED]" in requests
    assert not any("ann@example.com" in r or "order-1234" in r for r in requests)
    shown = conveyor(settings, "traffic", DEPLOYMENT)
    assert shown.returncode == 0 and "shop" in shown.stdout and "p99 ms" in shown.stdout

    exported = tmp_path / "reviewed.jsonl"
    done = conveyor(
        settings, "traffic", "export", DEPLOYMENT, "--app", "shop", "--to", str(exported)
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [row["text"] for row in rows] == texts[:8]
    assert {row["provenance"]["app"] for row in rows} == {"shop"}
    assert all(row["label"] and row["provenance"]["version"] == version for row in rows)


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("COPY (SELECT * FROM traffic) TO '/tmp/out.csv'", "COPY statement is refused"),
        ("SELECT * FROM read_csv('/etc/passwd')", "may read only the capture"),
        ("SELECT 1; SELECT 2", "one SELECT statement at a time"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statement is refused"),
    ],
)
def test_sql_that_writes_or_reads_elsewhere_is_refused_with_one_line(
    registry: Registry, settings: Settings, tokenizer: Any, sql: str, said: str
) -> None:
    make_version(registry, settings, tokenizer, 0)
    result = conveyor(settings, "traffic", DEPLOYMENT, "--sql", sql)
    assert result.returncode == ExitCode.BAD_INPUT
    assert result.stderr.startswith("error: --sql") and said in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not Path("/tmp/out.csv").exists()


def test_chat_answers_are_captured_with_tokens_ttft_and_finish_reason(
    registry: Registry, settings: Settings, tmp_path: Path, smollm2_tokenizer_dir: Path
) -> None:
    folder = write_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir)
    llm = register_llm(registry, settings, folder, serving={"capture": FAST})
    _, key = registry.create_api_key("bot", [DEPLOYMENT])
    chat = [{"role": "user", "content": "Name a restaurant near the river, I am bob@x.org"}]
    redacted = [{"role": "user", "content": "Name a restaurant near the river, I am [REDACTED]"}]
    with running_server(settings.model_copy(update={"require_api_key": True})) as server:
        for tokens in (3, 5):
            body = {"model": DEPLOYMENT, "messages": chat, "max_tokens": tokens, "temperature": 0}
            status, answer = _post(server.port, "/v1/chat/completions", body, key)
            assert status == 200, answer
        # The prompt as the capture keeps it (redacted), asked live: what a replay must answer.
        body = {"model": DEPLOYMENT, "messages": redacted, "max_tokens": 5, "temperature": 0}
        status, answer = _post(server.port, "/v1/chat/completions", body, key)
        assert status == 200, answer
        live = answer["choices"][0]["message"]["content"]
        assert _wait_for_rows(settings, 3) == 3
    (row,) = _summary(settings)
    assert (row["version"], row["app"], row["requests"]) == (llm, "bot", 3)
    assert row["tokens_out"] == 13 and row["finish_reasons"] == {"length": 3}
    sql = "SELECT request, answer, ttft_ms, cache_hit FROM traffic ORDER BY tokens_out"
    result = conveyor(settings, "traffic", DEPLOYMENT, "--json", "--sql", sql)
    first, *_ = json.loads(result.stdout)
    assert json.loads(first["request"]) == redacted
    assert first["answer"] and first["ttft_ms"] > 0 and first["cache_hit"] is False
    # Replayed through this version (loaded here) and another: the live 5-token answer.
    other = register_llm(
        registry, settings, write_tiny_llama(tmp_path / "o", smollm2_tokenizer_dir, 1)
    )
    replay = conveyor(
        settings, "traffic", "compare", DEPLOYMENT, llm, other, "--replay", "1", "--json"
    )
    assert replay.returncode == 0, replay.stderr
    [replayed] = json.loads(replay.stdout)["rows"]
    assert (replayed["seen"], replayed["tokens"]) == (3, 5)
    assert replayed["answer_a"] == live, (replayed, live)
    exported = tmp_path / "chat.jsonl"
    assert (
        conveyor(settings, "traffic", "export", DEPLOYMENT, "--to", str(exported)).returncode == 0
    )
    messages = json.loads(exported.read_text().splitlines()[0])["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def _keep_sending(port: int, key: str, stop: threading.Event) -> None:
    texts = clinc_texts()
    i = 0
    while not stop.is_set():
        try:
            _post(port, "/classify", {"texts": texts[i % 500 : i % 500 + 8]}, key)
        except OSError:
            return
        i += 8


def test_a_worker_killed_mid_write_leaves_no_corrupt_file(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    capture = {"enabled": True, "rotate_mb": 0.01, "rotate_seconds": 3600}
    version = make_version(registry, settings, tokenizer, 0, serving={"capture": capture})
    promote(registry, version, canary_percent=0, timeout=5)
    _, key = registry.create_api_key("shop", [DEPLOYMENT])
    root = capture_root(settings.home, DEPLOYMENT)
    stop = threading.Event()
    with running_server(settings.model_copy(update={"require_api_key": True})) as server:
        sender = threading.Thread(target=_keep_sending, args=(server.port, key, stop))
        sender.start()
        deadline = time.monotonic() + 60
        while len(published_files(root)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        drafts: list[Path] = []
        while not drafts and time.monotonic() < deadline:
            drafts = list(root.rglob(".part-*"))
        assert drafts, "no capture file was being written"
        writer = draft_pid(drafts[0].name)
        assert writer is not None
        os.kill(writer, signal.SIGKILL)  # the worker, mid-write: its draft open and growing
        assert drafts[0].exists()  # left behind by the kill (a new worker is still starting)
        files = published_files(root)
        stop.set()
        sender.join(timeout=30)
        assert len(files) >= 2
        for path in files:  # every visible file reads whole
            assert pq.read_table(path).num_rows == pq.read_metadata(path).num_rows > 0
        result = conveyor(settings, "traffic", DEPLOYMENT, "--json")
        assert result.returncode == 0 and json.loads(result.stdout)[0]["requests"] > 0

        wait_ready(server.port, process=server.process)  # BentoML started a new worker
        deadline = time.monotonic() + 30
        while drafts[0].exists() and time.monotonic() < deadline:
            _post(server.port, "/classify", {"text": "set a timer"}, key)  # its capture sweeps
            time.sleep(0.5)
        assert not drafts[0].exists()


@contextmanager
def _tiny_disk(folder: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (a tmpfs) mounted at ``folder``; root only."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_capture_disk_that_fills_stops_the_capture_says_so_and_serving_goes_on(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    """The capture's folder on a 64 KiB filesystem: once it is full the capture stops and
    says why (status, metrics, log), and every request is still answered."""
    import random

    version = make_version(registry, settings, tokenizer, 0, serving={"capture": FAST})
    promote(registry, version, canary_percent=0, timeout=5)
    _, key = registry.create_api_key("shop", [DEPLOYMENT])
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz "
    statuses: list[int] = []
    with (
        _tiny_disk(settings.home / "capture", "64k"),
        running_server(settings.model_copy(update={"require_api_key": True})) as server,
    ):
        deadline = time.monotonic() + 60
        while server.status()["capture"]["stopped"] is None and time.monotonic() < deadline:
            text = "".join(rng.choice(letters) for _ in range(1500))  # hardly compresses
            statuses.append(_post(server.port, "/classify", {"text": text}, key)[0])
        stopped = server.status()["capture"]["stopped"]
        statuses += [_post(server.port, "/classify", {"text": "set a timer"}, key)[0]] * 5
        metrics = _metrics(server.port)
        log = server.log.read_text(errors="replace")
    assert stopped is not None and "No space left on device" in stopped, stopped
    assert set(statuses) == {200} and len(statuses) > 5
    assert _sample(metrics, "conveyor_capture_rows_total", outcome="lost") > 0
    assert f"capture of {DEPLOYMENT} stopped" in log and "serving goes on" in log
