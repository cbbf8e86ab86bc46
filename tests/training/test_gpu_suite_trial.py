"""The prepared GPU suite (issue 17) still runs: its rows at tiny shapes on the CPU.

The device is lent rarely and for 15 minutes, so a row broken by a change here must show in
CI, not on the device. Rows 1 (torch.compile, a minute on two cores) and 5 (a whole recipe,
covered by tests/training) are left to `python -m bench.gpu_suite --quick`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu_suite import QUICK, run_rows
from tests.generation.conftest import smollm2_tokenizer_dir  # noqa: F401

pytestmark = pytest.mark.integration


def test_zero_lora_and_generation_rows_run_and_report(
    smollm2_tokenizer_dir: Path,  # noqa: F811
) -> None:
    from training import engine as ds

    ds.ensure_distributed_env()
    rows = run_rows(["2", "3", "4"], QUICK, None, smollm2_tokenizer_dir, None)
    assert [r["row"] for r in rows] == ["2", "2", "3", "4", "4"], rows
    for row in rows:
        assert row["what"] != "(failed)", row
        assert row["ours"] > 0, row
    assert "ZeRO-3" in rows[1]["what"] and "save gathered" in rows[1]["what"]
    assert rows[2]["baseline"] > 0 and rows[4]["baseline"] > 0
