"""Every CONVEYOR_* variable is a setting, documented, and a misspelt one is reported."""

from __future__ import annotations

import logging
import re
import subprocess

import pytest

from conveyor.settings import (
    OTHER_VARIABLES,
    RETIRED_VARIABLES,
    Settings,
    known_variables,
    load_settings,
    unknown_variables,
)
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.unit

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_has_a_row_in_the_readme_table() -> None:
    table = README.split("## Settings", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `(CONVEYOR_[A-Z_]+)` \|", table, flags=re.MULTILINE))
    fields = {f"CONVEYOR_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields
    for name in OTHER_VARIABLES:
        assert f"`{name}`" in README


def test_every_variable_the_code_reads_is_known() -> None:
    """grep the platform's code (not tests, not benches) for CONVEYOR_* names."""
    found = subprocess.run(
        ["git", "grep", "-ohE", r"CONVEYOR_[A-Z][A-Z0-9_]*", "--", "*.py", ":!tests", ":!bench"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    unknown = set(found) - known_variables() - set(RETIRED_VARIABLES)
    assert unknown == set(), f"read but not a setting: {sorted(unknown)}"


def test_a_misspelt_variable_is_reported_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CONVEYOR_SERVE_WORKER", "4")
    monkeypatch.setenv("CONVEYOR_MAX_BATCH", "8")
    monkeypatch.setenv("CONVEYOR_SERVE_WORKERS", "3")
    assert unknown_variables({"CONVEYOR_SERVE_WORKER": "4", "CONVEYOR_HOME": "/x"}) == {
        "CONVEYOR_SERVE_WORKER": "CONVEYOR_SERVE_WORKERS"
    }
    with caplog.at_level(logging.WARNING, logger="conveyor.settings"):
        settings = load_settings()
    assert settings.serve_workers == 3
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "CONVEYOR_SERVE_WORKER is not a conveyor setting" in messages
    assert "did you mean CONVEYOR_SERVE_WORKERS?" in messages
    assert "CONVEYOR_MAX_BATCH" in messages and "serving.batching.max_batch_size" in messages


def test_serve_time_variables_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_POLL_SECONDS", "0")
    with pytest.raises(ValueError, match="poll_seconds"):
        load_settings()
    monkeypatch.setenv("CONVEYOR_POLL_SECONDS", "0.5")
    monkeypatch.setenv("CONVEYOR_TORCH_THREADS", "2")
    monkeypatch.setenv("CONVEYOR_BENTO_MODEL", "intents:v1-abc")
    settings = load_settings()
    assert (settings.poll_seconds, settings.torch_threads) == (0.5, 2)
    assert settings.bento_model == "intents:v1-abc" and settings.serve_deployment is None
