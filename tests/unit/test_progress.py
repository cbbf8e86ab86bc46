"""Progress lines say how far along, how long it took and how long it should still take."""

from __future__ import annotations

import logging
import time

import pytest

from conveyor.progress import Ticker, duration, eta_text, waiting

log = logging.getLogger("test.progress")


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0.4, 42, 185, 3725)] == [
        "0 s",
        "42 s",
        "3 min 05 s",
        "1 h 02 min",
    ]


def test_eta_comes_from_the_pace_so_far() -> None:
    assert eta_text(10, 40, 5.0) == "10/40 (25%), 5 s elapsed, ETA 15 s"
    assert eta_text(0, 40, 1.0) == "0/40 (0%), 1 s elapsed"  # no pace yet, no guess
    # A resumed run took 10 of its 30 steps in 20 s: 10 left take 20 s more.
    assert eta_text(30, 40, 20.0, since=20) == "30/40 (75%), 20 s elapsed, ETA 20 s"


def test_a_ticker_logs_on_its_clock_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=log.name):
        ticker = Ticker(log, "v1: test examples classified", 100, every=3600)
        for _ in range(10):
            ticker.advance(10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [lines[-1]] and lines[0].startswith("v1: test examples classified: 100/100")


def test_waiting_beats_with_elapsed_and_eta_then_says_it_is_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=log.name), waiting(log, "building", 60, every=0.05):
        time.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "building (usually up to 1 min 00 s)"
    beats = lines[1:-1]
    assert beats and all("elapsed, ETA" in b for b in beats), lines
    assert lines[-1] == "building: done in 0 s"
