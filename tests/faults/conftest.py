"""The fault suite: each test injects one fault for real and reports a row of counts.

Rows go to the JSON file named by ``CONVEYOR_FAULTS_OUT`` (``docs/reliability.json`` when
the table in docs/reliability.md is refreshed, see ``bench/reliability_table.py``); without it
they go to a file in the temp folder, so a plain test run leaves the docs alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.fault_table import FaultTable

OUT_ENV = "CONVEYOR_FAULTS_OUT"


@pytest.fixture(scope="session")
def fault_table() -> Iterator[FaultTable]:
    default = Path(tempfile.gettempdir()) / "conveyor-faults.json"
    yield FaultTable(Path(os.environ.get(OUT_ENV) or default))
