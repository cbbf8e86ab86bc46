"""The real browser the e2e tests look through, and where their screenshots go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.paths import CHROMIUM


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """``CONVEYOR_SCREENSHOTS`` (CI sets and prints it), else the test's temporary folder."""
    folder = Path(os.environ.get("CONVEYOR_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless chromium driven by playwright (its own download fails offline)."""
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()
