"""The canary's judgement: per-version figures, the split, the desired state, the verdict.

Pure functions of plain values; nothing here loads a model or speaks HTTP.
"""

from serving.canary.desired import Desired, desired_state
from serving.canary.judge import CanaryThresholds, Decision, Verdict, judge_canary
from serving.canary.routing import canary_bucket, routes_to_canary
from serving.canary.stats import LATENCY_BUCKETS_MS, VersionStats, merge_stats

__all__ = [
    "LATENCY_BUCKETS_MS",
    "CanaryThresholds",
    "Decision",
    "Desired",
    "Verdict",
    "VersionStats",
    "canary_bucket",
    "desired_state",
    "judge_canary",
    "merge_stats",
    "routes_to_canary",
]
