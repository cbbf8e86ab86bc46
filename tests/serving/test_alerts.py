"""The shipped Prometheus alert rules load, and every metric they use is one serving exports."""

from __future__ import annotations

import re

import yaml

from testbed.paths import REPO_ROOT

RULES = REPO_ROOT / "infra" / "prometheus" / "alerts.yaml"
EXPORTED = {
    "conveyor_errors_total",
    "conveyor_requests_total",
    "conveyor_request_seconds_bucket",
    "conveyor_admission_total",
    "conveyor_predicted_labels_total",
    "conveyor_cache_lookups_total",
}


def test_alert_rules_load_and_use_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {
        "ConveyorHighErrorRate",
        "ConveyorHighLatencyP99",
        "ConveyorPredictedLabelDrift",
    } <= names
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]
        used = set(re.findall(r"\bconveyor_[a-z_]+", rule["expr"]))
        assert used and used <= EXPORTED, (rule["alert"], used - EXPORTED)
        assert rule["expr"].count("(") == rule["expr"].count(")")
