"""Bootstrap confidence intervals: for one model's headline metric, and paired for a difference.

Paired: the same resampled test indices score both models, so the interval is of the
difference itself; a gain is "significant" when the whole interval lies above zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Interval", "bootstrap_interval", "paired_difference_interval"]

Indices = npt.NDArray[np.int64]
Metric = Callable[[Indices], float]


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "samples": self.samples,
        }


def _resamples(size: int, samples: int, seed: int) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, size, size=(samples, size), dtype=np.int64)


def _interval(point: float, values: list[float], confidence: float, samples: int) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(point, float(low), float(high), confidence, samples)


def bootstrap_interval(
    metric: Metric, size: int, *, samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile interval of ``metric(indices)`` over resampled test sets of ``size``."""
    everything = np.arange(size, dtype=np.int64)
    values = [metric(rows) for rows in _resamples(size, samples, seed)]
    return _interval(metric(everything), values, confidence, samples)


def paired_difference_interval(
    candidate: Metric,
    champion: Metric,
    size: int,
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of ``candidate - champion`` with both scored on each same resample."""
    everything = np.arange(size, dtype=np.int64)
    point = candidate(everything) - champion(everything)
    values = [candidate(rows) - champion(rows) for rows in _resamples(size, samples, seed)]
    return _interval(point, values, confidence, samples)
