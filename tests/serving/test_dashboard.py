"""The Grafana dashboard queries only series the workers export, and draws the alert rules."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.live_server import classify, running_server
from testbed.paths import REPO_ROOT
from testbed.versions import make_version

DASHBOARD = REPO_ROOT / "infra" / "grafana" / "conveyor-serving.json"
RULES = REPO_ROOT / "infra" / "prometheus" / "alerts.yaml"
PROMETHEUS_OWN = {"ALERTS"}  # series Prometheus itself writes (firing alerts)
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def exported_series() -> set[str]:
    """Every series name serving's metrics produce, read from the code's own collectors."""
    from prometheus_client import CollectorRegistry

    from serving.worker.metrics import WorkerMetrics

    registry = CollectorRegistry()
    WorkerMetrics(registry)
    return {
        family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]
    }


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [t["expr"] for panel in _panels() for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def _names(query: str) -> set[str]:
    selected = set(re.findall(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*[{\[]", query))
    return selected | set(re.findall(r"\bconveyor_[a-z_]+", query))


def _plain(expr: str) -> str:
    return " ".join(expr.split())


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.mark.unit
def test_every_query_names_a_series_the_workers_export() -> None:
    exported = exported_series()
    assert {"conveyor_requests_total", "conveyor_request_seconds_bucket"} <= exported
    queries = _queries()
    assert len(queries) >= 15
    for query in queries:
        used = _names(query)
        assert used, query
        assert used - PROMETHEUS_OWN <= exported, (query, used - exported)
        assert query.count("(") == query.count(")"), query


@pytest.mark.unit
def test_the_dashboard_shows_what_an_operator_asks_first() -> None:
    panels = _panels()
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in ("requests", "error rate", "p50 and p99", "canary", "cache hit", "confidence"):
        assert wanted in titles, wanted
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    by_version = [q for q in _queries() if "by (version" in q]
    assert len(by_version) >= 6  # per-version figures, not one blended line


@pytest.mark.unit
def test_every_alert_rule_is_drawn_with_its_expression_and_threshold() -> None:
    drawn = {_plain(target["expr"]): panel for panel in _panels() for target in panel["targets"]}
    rules = _rules()
    assert rules
    for rule in rules:
        match = re.fullmatch(r"(.*) > ([0-9.]+)", _plain(rule["expr"]))
        assert match, rule["alert"]
        expression, threshold = match.group(1), float(match.group(2))
        panel = drawn.get(expression)
        assert panel is not None, f"no panel draws alert {rule['alert']}"
        assert rule["alert"] in panel["description"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps if s["color"] == "red"] == [threshold], rule["alert"]
    firing = [p for p in _panels() if "ALERTS{" in p["targets"][0]["expr"]]
    assert firing and 'alertname=~"Conveyor.*"' in firing[0]["targets"][0]["expr"]


@pytest.mark.unit
def test_alert_rules_use_only_exported_series() -> None:
    exported = exported_series()
    for rule in _rules():
        used = _names(rule["expr"])
        assert used and used <= exported, (rule["alert"], used - exported)


def _scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


@pytest.mark.integration
def test_a_real_scrape_has_every_series_the_dashboard_and_alerts_query(
    registry: Registry, settings: Settings, tokenizer: Any, tmp_path: Path
) -> None:
    from serving.control.rollout import promote

    version = make_version(registry, settings, tokenizer, 0)
    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings, log_dir=tmp_path) as server:
        for text in ("set a timer", "set a timer", "translate hello"):
            assert classify(server.port, text)[0] == 200
        scraped = set(re.findall(r"^(conveyor_[a-z_]+)", _scrape(server.port), flags=re.M))
    queried = set().union(*(_names(q) for q in _queries() + [r["expr"] for r in _rules()]))
    missing = (queried - PROMETHEUS_OWN) - scraped
    assert not missing, f"queried but not in a real /metrics scrape: {sorted(missing)}"


SCRAPE = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"


def test_the_scrape_config_loads_the_alert_rules_and_finds_the_bento_pods() -> None:
    config = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    assert [(SCRAPE.parent / name).is_file() for name in config["rule_files"]] == [True]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["conveyor-local"]["static_configs"][0]["targets"] == ["127.0.0.1:3000"]
    bento = jobs["conveyor-bento"]
    manifest = (REPO_ROOT / "infra" / "kubernetes" / "serving" / "bento.yaml").read_text()
    kept = {r["regex"] for r in bento["relabel_configs"] if r.get("action") == "keep"}
    assert "app.kubernetes.io/name: bento" in manifest and "bento" in kept
    assert "- name: http" in manifest and "http" in kept
    assert bento["authorization"]["type"] == "Bearer"  # /metrics takes a key beyond loopback
    assert {"conveyor_model_info", "conveyor_canary_percent", "conveyor_refusals_total"} <= (
        exported_series()
    )
