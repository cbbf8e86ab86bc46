"""``decide``: a candidate's evaluation (and the champion's) against the recipe's gates.

A pure function of plain values: no model, no registry, no Prefect. Every check is
listed with its value, threshold and outcome; the verdict's reason names what
failed, or why it passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conveyor.recipe.schema import GatesSection
from gates.bootstrap import Interval

__all__ = ["Evaluation", "GateCheck", "Verdict", "at_least", "at_most", "decide", "significance"]


@dataclass(frozen=True)
class Evaluation:
    """One model scored on one test split. ``error`` set means it could not be evaluated."""

    version: str
    task: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_class_f1: dict[str, float] = field(default_factory=dict)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    interval: Interval | None = None
    error: str | None = None


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None
    threshold: float | None
    comparison: str  # ">=", "<=", ">" or "" for a check that only informs
    outcome: str  # "pass", "fail" or "warn"
    detail: str

    @property
    def failed(self) -> bool:
        return self.outcome == "fail"


@dataclass(frozen=True)
class Verdict:
    candidate: str
    champion: str | None
    passed: bool
    reason: str
    checks: list[GateCheck]
    headline_metric: str
    gain: Interval | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gain"] = self.gain.as_dict() if self.gain else None
        return data


def at_least(name: str, value: float, floor: float, what: str) -> GateCheck:
    ok = value >= floor
    detail = f"{what} {value:.4f} {'>=' if ok else '<'} {floor:.4f}"
    return GateCheck(name, value, floor, ">=", "pass" if ok else "fail", detail)


def at_most(name: str, value: float, ceiling: float, what: str) -> GateCheck:
    ok = value <= ceiling
    detail = f"{what} {value:.4g} {'<=' if ok else '>'} {ceiling:.4g}"
    return GateCheck(name, value, ceiling, "<=", "pass" if ok else "fail", detail)


def _threshold_checks(candidate: Evaluation, gates: GatesSection) -> list[GateCheck]:
    m = candidate.metrics
    found: list[GateCheck] = []
    if gates.min_accuracy is not None and "accuracy" in m:
        found.append(at_least("min_accuracy", m["accuracy"], gates.min_accuracy, "accuracy"))
    if gates.min_macro_f1 is not None and "macro_f1" in m:
        found.append(at_least("min_macro_f1", m["macro_f1"], gates.min_macro_f1, "macro-F1"))
    if gates.min_in_scope_accuracy is not None and "in_scope_accuracy" in m:
        floor = gates.min_in_scope_accuracy
        what = "in-scope accuracy"
        found.append(at_least("min_in_scope_accuracy", m["in_scope_accuracy"], floor, what))
    if gates.max_perplexity is not None and "perplexity" in m:
        found.append(at_most("max_perplexity", m["perplexity"], gates.max_perplexity, "perplexity"))
    if gates.max_p99_latency_ms is not None and "p99_ms_batch1" in m:
        found.append(
            at_most(
                "max_p99_latency_ms",
                m["p99_ms_batch1"],
                gates.max_p99_latency_ms,
                "p99 latency (ms)",
            )
        )
    if gates.max_model_size_mb is not None and "model_size_mb" in m:
        found.append(
            at_most("max_model_size_mb", m["model_size_mb"], gates.max_model_size_mb, "size (MB)")
        )
    if candidate.unknown_labels:
        count = sum(candidate.unknown_labels.values())
        names = ", ".join(sorted(candidate.unknown_labels)[:5])
        detail = (
            f"{count} test examples have labels the model does not know ({names}); "
            "counted as errors"
        )
        found.append(GateCheck("known_test_labels", float(count), 0.0, "<=", "warn", detail))
    return found


def _classification_regressions(
    candidate: Evaluation, champion: Evaluation, gates: GatesSection
) -> list[GateCheck]:
    drop = champion.metrics["macro_f1"] - candidate.metrics["macro_f1"]
    found = [
        at_most(
            "max_macro_f1_drop",
            drop,
            gates.max_macro_f1_drop,
            f"macro-F1 drop vs {champion.version}",
        )
    ]
    shared = set(candidate.per_class_f1) & set(champion.per_class_f1)
    if shared:
        drops = {c: champion.per_class_f1[c] - candidate.per_class_f1[c] for c in shared}
        worst = max(drops, key=lambda c: drops[c])
        check = at_most(
            "max_class_f1_drop",
            drops[worst],
            gates.max_class_f1_drop,
            f"worst class F1 drop ('{worst}')",
        )
        found.append(check)
    return found


def _lm_regressions(
    candidate: Evaluation, champion: Evaluation, gates: GatesSection
) -> list[GateCheck]:
    rise = candidate.metrics["perplexity"] / champion.metrics["perplexity"] - 1
    what = f"perplexity rise vs {champion.version} (relative)"
    return [at_most("max_perplexity_increase", rise, gates.max_perplexity_increase, what)]


def significance(gain: Interval | None, metric: str, champion: str) -> GateCheck:
    if gain is None:
        return GateCheck("significant_gain", None, 0.0, ">", "fail", "no paired interval computed")
    ok = gain.low > 0
    detail = (
        f"{metric} gain over {champion}: {gain.estimate:+.4f}, "
        f"{gain.confidence:.0%} CI [{gain.low:+.4f}, {gain.high:+.4f}] "
        f"{'lies above 0' if ok else 'includes 0: not better beyond noise'}"
    )
    return GateCheck("significant_gain", gain.low, 0.0, ">", "pass" if ok else "fail", detail)


def _reason(checks: list[GateCheck], champion: Evaluation | None, compared: bool) -> str:
    failed = [c for c in checks if c.failed]
    if failed:
        return "fail: " + "; ".join(c.detail for c in failed)
    if champion is None:
        return f"pass: all {len(checks)} checks passed (first model: judged on thresholds alone)"
    if not compared:
        return (
            f"pass: all {len(checks)} checks passed; "
            f"champion {champion.version} could not be evaluated"
        )
    return f"pass: all {len(checks)} checks passed against champion {champion.version}"


def decide(
    candidate: Evaluation,
    champion: Evaluation | None,
    gates: GatesSection,
    gain: Interval | None = None,
) -> Verdict:
    """Judge ``candidate``; ``gain`` is the paired interval of candidate minus champion."""
    headline = "perplexity" if candidate.task == "causal-lm" else gates.headline_metric
    champ_name = champion.version if champion else None
    if candidate.error is not None:
        check = GateCheck("artifact_loads", None, None, "", "fail", candidate.error)
        return Verdict(
            candidate.version,
            champ_name,
            False,
            f"fail: artifact unloadable: {candidate.error}",
            [check],
            headline,
        )
    checks = _threshold_checks(candidate, gates)
    compared = champion is not None and champion.error is None
    if champion is not None and champion.error is not None:
        detail = f"champion {champion.version} could not be evaluated: {champion.error}"
        checks.append(GateCheck("champion_evaluated", None, None, "", "warn", detail))
    if compared and champion is not None:
        if candidate.task == "causal-lm":
            checks += _lm_regressions(candidate, champion, gates)
        else:
            checks += _classification_regressions(candidate, champion, gates)
        if gates.require_significant_gain:
            checks.append(significance(gain, headline, champion.version))
    passed = not any(c.failed for c in checks)
    return Verdict(
        candidate.version,
        champ_name,
        passed,
        _reason(checks, champion, compared),
        checks,
        headline,
        gain if compared else None,
    )
