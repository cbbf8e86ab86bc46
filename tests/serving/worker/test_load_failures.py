"""A version that fails to load, whatever the exception, is refused, reported, and tried again
with backoff, never in a loop (issue 13, item 7). Real registry, real controller, real files."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from conveyor.model_folder.hashing import file_sha256
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.control.errors import PromotionRefused
from serving.control.packaging import package_version
from serving.control.rollout import promote
from serving.engine.inference import SmokeError
from serving.worker.controller import Controller
from serving.worker.loading import load_failure, model_folder, retry_delay
from testbed.versions import DEPLOYMENT, make_version


def test_retry_delay_backs_off_to_a_ceiling() -> None:
    assert [retry_delay(n) for n in range(5)] == [0.0, 5.0, 10.0, 20.0, 40.0]
    assert retry_delay(50) == 300.0


def test_load_failure_names_foreign_exception_classes() -> None:
    assert load_failure(SmokeError("smoke set failed: x")) == "smoke set failed: x"
    assert load_failure(RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF\nmore")) == (
        "RuntimeError: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF"
    )
    assert load_failure(OSError()) == "OSError"


@pytest.fixture
def corrupt_onnx(registry: Registry, settings: Settings, tokenizer: Any) -> tuple[str, str]:
    """v1 serving; v2 packaged for ONNX Runtime, its model.onnx then replaced by junk."""
    v1 = make_version(registry, settings, tokenizer, 0)
    promote(registry, v1, canary_percent=0, timeout=5)
    v2 = make_version(registry, settings, tokenizer, 1, serving={"backend": "onnx"})
    package_version(registry, v2, build_bento=False)
    folder = model_folder(registry.resolve(v2))
    assert folder is not None
    # An export ONNX Runtime cannot read, recorded as what was exported (its hash matches):
    # the error then comes from onnxruntime itself, not from a hash check.
    (folder / "model.onnx").write_bytes(b"\x08not an onnx graph" * 64)
    report = json.loads((folder / "onnx.json").read_text())
    report["sha256"] = file_sha256(folder / "model.onnx")
    (folder / "onnx.json").write_text(json.dumps(report))
    return v1, v2


def test_a_corrupt_onnx_candidate_is_refused_by_promote(
    registry: Registry, corrupt_onnx: tuple[str, str]
) -> None:
    v1, v2 = corrupt_onnx
    with pytest.raises(PromotionRefused, match="nothing moved"):
        promote(registry, v2, canary_percent=0, timeout=5)
    assert registry.alias(DEPLOYMENT, "production") == v1


def test_a_worker_refuses_it_keeps_serving_and_does_not_retry_in_a_loop(
    registry: Registry, corrupt_onnx: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    v1, v2 = corrupt_onnx
    controller = Controller(registry, DEPLOYMENT, poll_seconds=0.05)
    controller.sync()
    assert controller.routing.active is not None and controller.routing.active.version == v1
    # another host verified it (or skipped verifying): the alias moves under this worker
    registry.start_rollout(DEPLOYMENT, v2, kind="promote", reason="test", expected=v1)
    with caplog.at_level(logging.ERROR, logger="serving.worker.controller"):
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            controller.sync()
            time.sleep(0.05)
    loads = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(loads) == 1 and "attempt 1" in loads[0].getMessage(), (
        "tried once, then waits its backoff (5 s) before the next try"
    )
    assert controller.routing.active is not None and controller.routing.active.version == v1
    reason = controller.failures[v2][0]
    assert reason.split(":")[0] in {"InvalidProtobuf", "RuntimeError", "Fail", "InvalidGraph"}
    (worker,) = registry.workers(DEPLOYMENT)
    assert worker.failures[v2] == reason and worker.active_version == v1
