"""Serving: the Bento service, packaging, and the live controller (load, warm, verify, swap,
canary, rollback). Heavy modules (BentoML, torch) are imported where used."""

from serving.desired import Desired, desired_state
from serving.errors import ConvergenceError, PromotionRefused
from serving.judge import CanaryThresholds, Decision, Verdict, judge_canary
from serving.routing import canary_bucket, routes_to_canary
from serving.stats import LATENCY_BUCKETS_MS, VersionStats, merge_stats

__all__ = [
    "LATENCY_BUCKETS_MS",
    "CanaryThresholds",
    "ConvergenceError",
    "Decision",
    "Desired",
    "PromotionRefused",
    "Verdict",
    "VersionStats",
    "canary_bucket",
    "desired_state",
    "judge_canary",
    "merge_stats",
    "routes_to_canary",
]
