"""No app outweighs the others in a canary verdict (issue 13, item 6): pure figures."""

from __future__ import annotations

from serving.canary.evidence import APPS_KEY, capped_evidence, merge_by_app
from serving.canary.stats import VersionStats


def _stats(requests: int, errors: int, latency_ms: float = 5.0) -> VersionStats:
    stats = VersionStats()
    for index in range(requests):
        stats.observe(latency_ms, index < errors)
    return stats


def test_a_flooding_app_is_scaled_to_its_share() -> None:
    honest = _stats(100, 50)  # the candidate fails half of what this app sends
    flood = _stats(10_000, 0)  # one app sending easy requests to pass it
    judged = capped_evidence({"honest": honest, "flood": flood}, max_share=0.5)
    assert judged.requests == 200 and judged.errors == 50
    assert judged.error_rate == 0.25
    uncapped = capped_evidence({"honest": honest, "flood": flood}, max_share=1.0)
    assert uncapped.error_rate < 0.005, "without the cap the flood passes it"


def test_balanced_apps_and_a_lone_app_are_judged_whole() -> None:
    even = {"a": _stats(100, 10), "b": _stats(90, 0), "c": _stats(80, 0)}
    assert capped_evidence(even, max_share=0.5).requests == 270
    lone = capped_evidence({"only": _stats(40, 4)}, max_share=0.5)
    assert (lone.requests, lone.errors) == (40, 4)


def test_many_apps_each_capped_and_latency_buckets_scaled_too() -> None:
    apps = {"big": _stats(1000, 0, 1.0), "x": _stats(10, 0, 900.0), "y": _stats(10, 0, 900.0)}
    judged = capped_evidence(apps, max_share=0.5)
    assert judged.requests == 40 and judged.percentile_ms(99) == 1000


def test_per_app_figures_merge_across_workers() -> None:
    one = {
        **_stats(3, 1).as_dict(),
        APPS_KEY: {"a": _stats(2, 1).as_dict(), "b": _stats(1, 0).as_dict()},
    }
    two = {**_stats(4, 0).as_dict(), APPS_KEY: {"a": _stats(4, 0).as_dict()}}
    legacy = _stats(5, 5).as_dict()  # a worker that does not report apps
    merged = merge_by_app([one, two, legacy])
    assert {app: (s.requests, s.errors) for app, s in merged.items()} == {
        "a": (6, 1), "b": (1, 0), "?": (5, 5),
    }  # fmt: skip
