"""The verdict both kinds of gate give: named checks, and one way of assembling them.

Pure values and functions: no model, no registry, no Prefect. A :class:`GateCheck` is one
check with its value, threshold and outcome. A :class:`GateKind` is one kind of gate's
``decide``: built from what that kind checks itself (thresholds on the candidate, regressions
against the champion, its headline metric), called like a function, it runs what every gate
shares (an unloadable candidate, a champion that could not be evaluated, the significance of
the gain) and writes the reason: what failed, or why it passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from conveyor.recipe.schema import GatesSection
from gates.bootstrap import Interval

__all__ = [
    "Evaluation",
    "GateCheck",
    "GateKind",
    "Judged",
    "Judgement",
    "Verdict",
    "at_least",
    "at_most",
    "headline_drop",
    "perplexity_rise",
    "significance",
]


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


@dataclass(frozen=True)
class Judgement:
    """A gate kind's answer on one candidate: the verdict, both evaluations, the report.

    ``payload`` is what is stored with the version (the verdict and the figures behind it).
    """

    verdict: Verdict
    candidate: Evaluation
    champion: Evaluation | None
    report: str
    payload: dict[str, Any]
    plot_path: Path | None = None


class Judged(Protocol):
    """What the verdict needs of a model's evaluation, whatever the gate kind."""

    @property
    def version(self) -> str: ...

    @property
    def error(self) -> str | None: ...


E = TypeVar("E", bound=Judged)


def at_least(name: str, value: float, floor: float, what: str) -> GateCheck:
    ok = value >= floor
    detail = f"{what} {value:.4f} {'>=' if ok else '<'} {floor:.4f}"
    return GateCheck(name, value, floor, ">=", "pass" if ok else "fail", detail)


def at_most(name: str, value: float, ceiling: float, what: str) -> GateCheck:
    ok = value <= ceiling
    detail = f"{what} {value:.4g} {'<=' if ok else '>'} {ceiling:.4g}"
    return GateCheck(name, value, ceiling, "<=", "pass" if ok else "fail", detail)


def perplexity_rise(candidate: float, champion: float, ceiling: float, versus: str) -> GateCheck:
    """The candidate's perplexity over the champion's (``versus``), as a relative rise."""
    what = f"perplexity rise vs {versus} (relative)"
    return at_most("max_perplexity_increase", candidate / champion - 1, ceiling, what)


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


def headline_drop(gain: Interval | None, metric: str, champion: str, ceiling: float) -> GateCheck:
    """The headline's drop against ``champion`` (a parent, for a compressed candidate) within
    ``ceiling``, judged on the paired estimate; its interval is in the detail."""
    if gain is None:
        detail = "no paired interval computed"
        return GateCheck("max_headline_drop", None, ceiling, "<=", "fail", detail)
    drop = -gain.estimate
    ok = drop <= ceiling
    detail = (
        f"{metric} drop vs {champion}: {drop:.4f} {'<=' if ok else '>'} {ceiling:.4f} "
        f"(change {gain.estimate:+.4f}, {gain.confidence:.0%} CI "
        f"[{gain.low:+.4f}, {gain.high:+.4f}])"
    )
    return GateCheck("max_headline_drop", drop, ceiling, "<=", "pass" if ok else "fail", detail)


def _reason(checks: list[GateCheck], champion: Judged | None, compared: bool, alone: str) -> str:
    failed = [c for c in checks if c.failed]
    if failed:
        return "fail: " + "; ".join(c.detail for c in failed)
    if champion is None:
        return f"pass: all {len(checks)} checks passed ({alone}: judged on thresholds alone)"
    if not compared:
        return (
            f"pass: all {len(checks)} checks passed; "
            f"champion {champion.version} could not be evaluated"
        )
    return f"pass: all {len(checks)} checks passed against champion {champion.version}"


@dataclass(frozen=True)
class GateKind(Generic[E]):
    """``decide`` for one kind of gate: its own checks and headline; the rest is shared."""

    thresholds: Callable[[E, GatesSection], list[GateCheck]]
    regressions: Callable[[E, E, GatesSection], list[GateCheck]]
    headline: Callable[[E, GatesSection], str]
    alone: str  # how the reason names a candidate judged without a champion
    drop_ceiling: Callable[[GatesSection], float | None] | None = None  # headline vs champion

    def __call__(
        self, candidate: E, champion: E | None, gates: GatesSection, gain: Interval | None = None
    ) -> Verdict:
        """Judge ``candidate``; ``gain`` is the paired interval of the headline, minus champion."""
        headline = self.headline(candidate, gates)
        champ_name = champion.version if champion else None
        if candidate.error is not None:
            check = GateCheck("artifact_loads", None, None, "", "fail", candidate.error)
            reason = f"fail: artifact unloadable: {candidate.error}"
            return Verdict(candidate.version, champ_name, False, reason, [check], headline)
        checks = self.thresholds(candidate, gates)
        compared = champion is not None and champion.error is None
        if champion is not None and champion.error is not None:
            detail = f"champion {champion.version} could not be evaluated: {champion.error}"
            checks.append(GateCheck("champion_evaluated", None, None, "", "warn", detail))
        if compared and champion is not None:
            checks += self.regressions(candidate, champion, gates)
            ceiling = self.drop_ceiling(gates) if self.drop_ceiling else None
            if ceiling is not None:
                checks.append(headline_drop(gain, headline, champion.version, ceiling))
            if gates.require_significant_gain:
                checks.append(significance(gain, headline, champion.version))
        passed = not any(c.failed for c in checks)
        return Verdict(
            candidate.version,
            champ_name,
            passed,
            _reason(checks, champion, compared, self.alone),
            checks,
            headline,
            gain if compared else None,
        )
