"""`conveyor promote` and `rollback` in a subprocess exit with the codes of the README's table."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import ExitCode
from conveyor.registry import Registry, WorkerRecord, open_registry
from conveyor.settings import Settings
from serving.control.rollout import promote
from testbed.paths import REPO_ROOT
from testbed.versions import DEPLOYMENT, make_version

pytestmark = pytest.mark.integration


def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=180,
    )


def _said(result: subprocess.CompletedProcess[str], code: ExitCode, *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stdout + result.stderr


@contextmanager
def stuck_worker(settings: Settings, version: str) -> Iterator[None]:
    """A live worker (fresh heartbeats) that keeps serving ``version`` and never follows."""
    stop = threading.Event()
    registry = open_registry(settings)
    started = datetime.now(UTC)

    def beat() -> None:
        while not stop.is_set():
            registry.heartbeat(
                WorkerRecord(
                    "stuck-1",
                    DEPLOYMENT,
                    os.getpid(),
                    socket.gethostname(),
                    started,
                    datetime.now(UTC),
                    version,
                    None,
                    None,
                    None,
                    {},
                    {},
                )  # fmt: skip
            )
            stop.wait(0.3)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        registry.close()


def test_promote_and_rollback_exit_codes(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    v1 = make_version(registry, settings, tokenizer, 0)
    _said(conveyor("rollback", DEPLOYMENT), ExitCode.NOT_FOUND, "no earlier version")

    first = conveyor("promote", v1, "--timeout", "2")
    _said(first, ExitCode.OK, "no live worker serves it yet")
    assert "all 0" not in first.stdout and "converged in" not in first.stdout
    _said(conveyor("promote", v1), ExitCode.CONFLICT, f"{v1} already serves")

    broken = make_version(registry, settings, tokenizer, 1)
    shutil.rmtree(Path(str(registry.resolve(broken).artifact_uri)))
    _said(conveyor("promote", broken), ExitCode.PROMOTION_REFUSED, "refused, nothing moved")
    assert registry.alias(DEPLOYMENT, "production") == v1

    v3 = make_version(registry, settings, tokenizer, 2)
    with stuck_worker(settings, v1):
        late = conveyor("promote", v3, "--canary", "0", "--timeout", "2")
    _said(late, ExitCode.NOT_CONVERGED, "stuck-1 (serves " + v1)


def test_the_first_promotion_with_no_worker_is_not_reported_as_served(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    version = make_version(registry, settings, tokenizer, 0)
    outcome = promote(registry, version, timeout=1)
    assert outcome.workers == []
    said = str(outcome.rollout.details["outcome"])
    assert "no live worker serves it yet" in said and "all 0" not in said


def test_status_says_when_its_record_was_written_and_who_serves_now(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    """A first promotion with no server records "no live worker serves it yet"; once a real
    `bentoml serve` serves it, `conveyor status` says so, with the endpoint, and shows the old
    record with the moment it was written; a straight move is not called a canary."""
    from testbed.live_server import running_server

    version = make_version(registry, settings, tokenizer, 0)
    _said(conveyor("promote", version, "--timeout", "1"), ExitCode.OK, "no live worker serves it")
    with running_server(settings) as server:
        said = conveyor("status", DEPLOYMENT)
        url = f"http://127.0.0.1:{server.port}"
        assert [w.url for w in registry.workers(DEPLOYMENT)] == [url]  # from its heartbeat
    _said(said, ExitCode.OK, f"now: {version} served by 1 of 1 live workers at {url}")
    rollout = next(line for line in said.stdout.splitlines() if "rollout" in line)
    assert "straight move, no canary (nothing served before to compare with)" in rollout
    assert "canary 100%" not in said.stdout and "bake 0 s" not in said.stdout
    assert "completed, recorded 20" in rollout and "UTC: production moved" in rollout
