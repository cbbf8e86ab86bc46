"""The arrival trace reader: the shipped slice reads whole; a malformed line names file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.azure_trace import SLICE, Arrival, TraceError, read_trace, scale

pytestmark = pytest.mark.unit

GOOD = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:15:46.6805900,374,44\r\n"


def test_the_shipped_slice_is_ten_minutes_of_arrivals() -> None:
    arrivals = read_trace(SLICE)
    assert len(arrivals) == 2867
    assert arrivals[0] == Arrival(0.0, 374, 44)
    assert arrivals[1].at == pytest.approx(4.314579)  # 18:15:50.9951690 - 18:15:46.6805900
    assert 599 < arrivals[-1].at < 600
    assert all(b.at >= a.at for a, b in zip(arrivals, arrivals[1:], strict=False))


def test_limit_keeps_the_first_seconds() -> None:
    assert all(a.at < 60 for a in read_trace(SLICE, limit_seconds=60))
    assert len(read_trace(SLICE, limit_seconds=60)) == 191  # the trace's first minute


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("2023-11-16 18:15:47.0,374", "2 fields, expected 3"),
        ("yesterday,374,44", "TIMESTAMP 'yesterday' is not a date and time"),
        ("2023-11-16 18:15:47.0,-5,44", "ContextTokens '-5' is not a whole number"),
        ("2023-11-16 18:15:47.0,374,4.5", "GeneratedTokens '4.5' is not a whole number"),
        ("2023-11-16 18:15:40.0,374,44", "before the trace's first arrival"),
    ],
)
def test_a_malformed_line_is_refused_with_file_and_line(
    tmp_path: Path, line: str, needle: str
) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(GOOD + "2023-11-16 18:15:46.9,10,10\r\n" + line + "\r\n", newline="")
    with pytest.raises(TraceError) as refused:
        read_trace(path)
    assert str(refused.value).startswith(f"{path}:4: ")
    assert needle in str(refused.value)


def test_a_file_that_is_not_a_trace_is_refused_at_its_header(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("text,label\nhello,greeting\n")
    with pytest.raises(TraceError, match=f"{path}:1: header"):
        read_trace(path)


def test_scaling_keeps_the_pattern() -> None:
    arrivals = [Arrival(0.0, 1000, 200), Arrival(10.0, 3, 1)]
    scaled = scale(arrivals, rate=2.0, tokens=0.1, max_output_tokens=16)
    assert scaled == [Arrival(0.0, 100, 16), Arrival(5.0, 1, 1)]
