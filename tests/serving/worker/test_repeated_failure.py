"""A failure that repeats every controller tick is logged once with its traceback, then summed."""

from __future__ import annotations

import logging

import pytest

from serving.worker.repeated_failure import RepeatedFailure


def _fail(failing: RepeatedFailure) -> None:
    try:
        raise ConnectionRefusedError("registry down")
    except ConnectionRefusedError:
        failing.happened()


def test_a_streak_of_failures_logs_one_traceback_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = RepeatedFailure("controller tick failed", every=3600)
    with caplog.at_level(logging.WARNING, logger="serving.worker.repeated_failure"):
        for _ in range(50):  # 10 s of ticks at 0.2 s
            _fail(failing)
        failing.ended()
        _fail(failing)
    records = caplog.records
    assert [r.exc_info is not None for r in records] == [True, False, True]
    assert "recovered after 50 failures" in records[1].getMessage()
    assert failing.count == 1, "a new streak after recovery starts again with a traceback"


def test_a_long_streak_says_so_every_period(caplog: pytest.LogCaptureFixture) -> None:
    failing = RepeatedFailure("heartbeat failed", every=0.0)
    with caplog.at_level(logging.WARNING, logger="serving.worker.repeated_failure"):
        for _ in range(3):
            _fail(failing)
    assert [r.getMessage() for r in caplog.records][1:] == [
        "heartbeat failed (2 times so far)",
        "heartbeat failed (3 times so far)",
    ]
