"""Where two versions answered the same inputs differently, from the captured traffic.

Canary traffic puts the same kinds of requests on two versions; wherever both versions
answered one same request text (status 200), their most recent answers are set side by
side. Pure SQL over the capture (:mod:`serving.control.traffic`), plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from serving.control.traffic import TrafficError, TrafficQuery, capture_connection, execute

__all__ = ["Comparison", "compare_versions"]

_LATEST = """
SELECT request, arg_max(answer, ts) AS answer, count(*) AS seen
FROM traffic WHERE version = {version} AND status = 200 AND answer IS NOT NULL
GROUP BY request
"""
_PAIRED = """
WITH a AS ({a}), b AS ({b})
SELECT a.request, a.answer AS answer_a, b.answer AS answer_b, a.seen AS seen_a,
       b.seen AS seen_b, a.answer IS NOT DISTINCT FROM b.answer AS same
FROM a JOIN b USING (request)
ORDER BY same, a.seen + b.seen DESC, a.request
"""


@dataclass(frozen=True)
class Comparison:
    """Two versions over the inputs both answered: how many, how many the same, and the
    differing ones (most requested first, at most ``limit``)."""

    version_a: str
    version_b: str
    only_a: int  # distinct inputs only version a answered
    only_b: int
    shared: int  # distinct inputs both answered
    same: int
    differing: list[dict[str, Any]]

    @property
    def agreement(self) -> float | None:
        return self.same / self.shared if self.shared else None


def _full(query: TrafficQuery, version: str) -> str:
    return replace(query, version=version).full_version() or version


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def compare_versions(
    home: Path, query: TrafficQuery, version_a: str, version_b: str, limit: int = 20
) -> Comparison:
    """Compare two versions' answers over the rows ``query`` selects (its ``version`` is
    ignored: the two named versions are)."""
    a, b = _full(query, version_a), _full(query, version_b)
    if a == b:
        raise TrafficError(f"compare two different versions, not {a} with itself")
    latest_a = _LATEST.format(version=_quoted(a))
    latest_b = _LATEST.format(version=_quoted(b))
    with capture_connection(home, replace(query, version=None)) as con:
        _, paired = execute(con, _PAIRED.format(a=latest_a, b=latest_b), "compare")
        _, counts = execute(
            con,
            f"SELECT (SELECT count(*) FROM ({latest_a})), (SELECT count(*) FROM ({latest_b}))",
            "compare",
        )
    names = ("request", "answer_a", "answer_b", "seen_a", "seen_b", "same")
    rows = [dict(zip(names, row, strict=True)) for row in paired]
    seen_a, seen_b = counts[0]
    same = sum(1 for row in rows if row["same"])
    return Comparison(
        a,
        b,
        only_a=seen_a - len(rows),
        only_b=seen_b - len(rows),
        shared=len(rows),
        same=same,
        differing=[row for row in rows if not row["same"]][:limit],
    )
