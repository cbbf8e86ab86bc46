"""The prepared GPU suite (issue 17) still runs: its rows at tiny shapes on the CPU.

The device is lent rarely and for 15 minutes, so a row broken by a change here must show in
CI, not on the device. The suite runs as it does there, `python -m bench.gpu_suite --quick`,
for rows 2 to 4; rows 1 (torch.compile, a minute on two cores) and 5 (a whole recipe, covered
by tests/training) are left to a run by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.paths import REPO_ROOT
from tests.training.conftest import subprocess_env

pytestmark = pytest.mark.integration


def test_zero_lora_and_generation_rows_run_and_report(
    smollm2_tokenizer_dir: Path, conveyor_home: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "bench.gpu_suite", "--rows", "2", "3", "4", "--quick",
        "--smollm2", str(smollm2_tokenizer_dir), "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=subprocess_env(conveyor_home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads((tmp_path / "gpu_suite.json").read_text())["rows"]
    assert [r["row"] for r in rows] == ["2", "2", "3", "4", "4"], rows
    for row in rows:
        assert row["what"] != "(failed)", row
        assert row["ours"] > 0, row
    assert "ZeRO-3" in rows[1]["what"] and "save gathered" in rows[1]["what"]
    assert rows[2]["baseline"] > 0 and rows[4]["baseline"] > 0
