"""kill -9 the flow process mid-training and mid-promotion; the re-run recovers.

Real processes throughout: a Prefect server, the flow in a child process killed with
SIGKILL, a real `bentoml serve` following the registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ports import free_port
from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from flows.server import ensure_prefect_server, stop_prefect_server
from serving.control.daemon import ensure_model_server, stop_model_server
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

DEPLOYMENT = "tiny-intents"
RUN_FLOW = (
    "import json, sys\n"
    "from flows import retrain\n"
    "args = json.loads(sys.argv[1])\n"
    "print('OUTCOME', json.dumps(retrain(**args), default=str), flush=True)\n"
)


@pytest.fixture
def stack(tmp_path: Path, conveyor_home: Path, tiny_bert: Path) -> Iterator[dict[str, Any]]:
    write_slice("train", 100, tmp_path / "train.jsonl")
    write_slice("validation", 20, tmp_path / "validation.jsonl")
    write_slice("test", 30, tmp_path / "test.jsonl")
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "model": {"base": str(tiny_bert), "max_length": 32},
        "training": {
            "epochs": 4,
            "batch_size": 16,
            "lr": 3.0e-3,
            "warmup_ratio": 0.1,
            "seed": 5,
            "checkpoint_every_steps": 10,
        },
        "gates": {"min_accuracy": 0.4},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    settings = Settings()
    server = ensure_prefect_server(settings, free_port())
    env = {**os.environ, "PREFECT_API_URL": server.api_url, "PYTHONUNBUFFERED": "1"}
    try:
        yield {"recipe": str(path), "settings": settings, "env": env, "home": conveyor_home}
    finally:
        stop_model_server(settings, DEPLOYMENT)
        stop_prefect_server(settings)


def _start_flow(stack: dict[str, Any], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    args = json.dumps({"recipe": stack["recipe"], **kwargs})
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-c", RUN_FLOW, args],
            cwd=REPO_ROOT,
            env=stack["env"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(child: subprocess.Popen[bytes], log: Path, timeout: float = 400) -> dict[str, Any]:
    child.wait(timeout=timeout)
    text = log.read_text(errors="replace")
    assert child.returncode == 0, text[-3000:]
    line = next(row for row in text.splitlines() if row.startswith("OUTCOME "))
    outcome: dict[str, Any] = json.loads(line.removeprefix("OUTCOME "))
    return outcome


def _kill_when(child: subprocess.Popen[bytes], condition: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, "the flow ended before the moment to kill it"
        assert time.monotonic() < deadline, "the moment to kill the flow never came"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def test_killed_during_training_the_rerun_resumes_from_the_checkpoint(
    stack: dict[str, Any], tmp_path: Path, registry: Registry
) -> None:
    latest = stack["home"] / "checkpoints" / DEPLOYMENT / "latest"
    first = _start_flow(stack, tmp_path / "first.log")
    _kill_when(first, latest.is_file)
    assert registry.list_versions(DEPLOYMENT) == []  # killed before it could register

    second = tmp_path / "second.log"
    outcome = _finish(_start_flow(stack, second), second)
    log = second.read_text(errors="replace")
    assert f"resuming {DEPLOYMENT} from its last checkpoint" in log
    assert "Cached" in log  # the data checks were not run again
    assert outcome["version"] == f"{DEPLOYMENT}:v1" and outcome["promoted"]
    assert [v.version for v in registry.list_versions(DEPLOYMENT)] == [f"{DEPLOYMENT}:v1"]


def _served_version(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/classify",
        data=json.dumps({"text": "set a timer"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["X-Model-Version"])


def test_killed_during_promotion_the_registry_and_the_server_agree(
    stack: dict[str, Any], tmp_path: Path, registry: Registry
) -> None:
    first = tmp_path / "first.log"
    assert _finish(_start_flow(stack, first), first)["promoted"]
    server = ensure_model_server(stack["settings"], DEPLOYMENT, free_port())
    assert _served_version(server.url) == f"{DEPLOYMENT}:v1"

    # a different model that passes whatever it scores: this test is about the crash
    overrides = ["training.seed=11", "gates.max_macro_f1_drop=1", "gates.max_class_f1_drop=1"]
    child = _start_flow(stack, tmp_path / "second.log", overrides=overrides, canary_percent=0)
    _kill_when(child, lambda: registry.alias(DEPLOYMENT, "production") == f"{DEPLOYMENT}:v2")

    deadline = time.monotonic() + 30
    while _served_version(server.url) != registry.alias(DEPLOYMENT, "production"):
        assert time.monotonic() < deadline, "the server never caught up with the registry"
        time.sleep(0.2)
    assert registry.alias(DEPLOYMENT, "production") == f"{DEPLOYMENT}:v2"

    rerun = tmp_path / "rerun.log"
    outcome = _finish(_start_flow(stack, rerun, overrides=overrides, canary_percent=0), rerun)
    assert outcome["version"] == f"{DEPLOYMENT}:v2"
    assert "already serves" in outcome["reason"]
    newest = registry.rollouts(DEPLOYMENT, limit=1)[0]
    if outcome.get("reconciled"):
        assert newest.state == RolloutState.COMPLETED
        assert str(newest.details["outcome"]).startswith("reconciled: the 1 live worker serves it")
    assert not newest.state.open
    assert _served_version(server.url) == f"{DEPLOYMENT}:v2"
