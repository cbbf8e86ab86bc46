"""What a canary is judged on: per-app figures, no app more than its share (pure).

A canary's verdict is evidence summed over the apps that called it. One app sending far more
than the others could steer that verdict (floods of easy requests to pass a bad candidate,
or of hard ones to fail a good one), so each app's figures are scaled down until none holds
more than ``max_share`` of the total. One app alone is judged on its own figures: there is
no one else to outweigh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from serving.canary.stats import VersionStats

__all__ = ["APPS_KEY", "MAX_APP_SHARE", "capped_evidence", "merge_by_app"]

APPS_KEY = "apps"  # where a heartbeat keeps per-app figures: ``stats[version]["apps"][app]``
MAX_APP_SHARE = 0.5


def merge_by_app(parts: Iterable[Mapping[str, Any]]) -> dict[str, VersionStats]:
    """Sum per-app figures over workers; a part without them counts as one unnamed app."""
    merged: dict[str, VersionStats] = {}
    for part in parts:
        apps = part.get(APPS_KEY)
        items = apps.items() if isinstance(apps, Mapping) else [("?", part)]
        for app, figures in items:
            one = VersionStats.from_dict(figures) if isinstance(figures, Mapping) else None
            if one is None:
                continue
            total = merged.setdefault(str(app), VersionStats())
            total.requests += one.requests
            total.errors += one.errors
            total.buckets = [a + b for a, b in zip(total.buckets, one.buckets, strict=True)]
    return merged


def _weights(requests: Mapping[str, int], max_share: float) -> dict[str, float]:
    """Per app a factor in (0, 1] so that no app holds more than ``max_share`` of the sum."""
    weights = {app: 1.0 for app, n in requests.items() if n > 0}
    if len(weights) < 2 or max_share >= 1:
        return weights
    share = max(max_share, 1 / len(weights))  # below 1/k no weighting can satisfy it
    for _ in range(len(weights)):
        scaled = {app: w * requests[app] for app, w in weights.items()}
        total = sum(scaled.values())
        app, largest = max(scaled.items(), key=lambda item: item[1])
        if largest <= share * total + 1e-9:
            break
        others = total - largest
        weights[app] *= share / (1 - share) * others / largest
    return weights


def capped_evidence(
    per_app: Mapping[str, VersionStats], max_share: float = MAX_APP_SHARE
) -> VersionStats:
    """The figures a verdict reads: every app's, scaled so none holds over ``max_share``."""
    weights = _weights({app: s.requests for app, s in per_app.items()}, max_share)
    total = VersionStats()
    for app, weight in weights.items():
        one = per_app[app]
        total.requests += round(one.requests * weight)
        total.errors += round(one.errors * weight)
        total.buckets = [
            a + round(b * weight) for a, b in zip(total.buckets, one.buckets, strict=True)
        ]
    return total
