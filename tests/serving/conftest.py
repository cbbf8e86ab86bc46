"""Fixtures of the serving tests (tiny versions, the live server and its clients are in
``testbed.versions``, ``testbed.live_server`` and ``testbed.traffic``)."""

from __future__ import annotations

import pytest

from conveyor.settings import Settings


@pytest.fixture
def serving_settings(settings: Settings) -> Settings:
    return settings
