"""The verdict for people: a Markdown report and a PNG of the weakest classes and top confusions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.markdown import code, escape, figure, table
from gates.verdict import Evaluation, GateCheck, Verdict

__all__ = ["PLOT_ALT", "Confusion", "markdown_report", "top_confusions"]

PLOT_ALT = "weakest classes and top confusions"
_SHOWN_METRICS = (
    "accuracy",
    "macro_f1",
    "in_scope_accuracy",
    "oos_recall",
    "oos_precision",
    "ece",
    "perplexity",
    "p50_ms_batch1",
    "p99_ms_batch1",
    "p50_ms_batch32",
    "p99_ms_batch32",
    "model_size_mb",
)
_CLASS_ROWS = 10


@dataclass(frozen=True)
class Confusion:
    """``count`` test examples of class ``truth`` were predicted as ``predicted``."""

    truth: str
    predicted: str
    count: int
    share: float  # of the examples of ``truth``


def top_confusions(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], n: int = _CLASS_ROWS
) -> list[Confusion]:
    """The ``n`` largest off-diagonal cells of a confusion matrix, largest first."""
    found = []
    for t, row in enumerate(matrix):
        total = sum(row)
        for p, count in enumerate(row):
            if t != p and count > 0:
                found.append(Confusion(labels[t], labels[p], int(count), count / total))
    found.sort(key=lambda c: (-c.count, c.truth, c.predicted))
    return found[:n]


def _threshold(check: GateCheck) -> str:
    return code(f"{check.comparison} {figure(check.threshold)}") if check.comparison else "-"


def _checks(verdict: Verdict) -> list[str]:
    rows = [
        [
            code(check.name),
            figure(check.value),
            _threshold(check),
            f"**{check.outcome.upper()}**" if check.failed else escape(check.outcome),
        ]
        for check in verdict.checks
    ]
    details = [f"- {escape(check.name)}: {escape(check.detail)}" for check in verdict.checks]
    return [table(["check", "value", "threshold", "result"], rows, right=(1,)), "", *details]


def _metric_rows(candidate: Evaluation, champion: Evaluation | None) -> list[str]:
    compared = champion is not None and champion.error is None
    rows = []
    for name in _SHOWN_METRICS:
        if name not in candidate.metrics:
            continue
        value = candidate.metrics[name]
        row = [code(name), figure(value)]
        if compared and champion is not None:
            other = champion.metrics.get(name)
            row += ["-", "-"] if other is None else [figure(other), f"{value - other:+.4f}"]
        rows.append(row)
    headers = ["metric", "candidate", *(["champion", "change"] if compared else [])]
    return [table(headers, rows, right=range(1, len(headers)))]


def _class_rows(candidate: Evaluation, champion: Evaluation | None) -> list[str]:
    if not candidate.per_class_f1:
        return []
    if champion is None or champion.error is not None or not champion.per_class_f1:
        worst = sorted(candidate.per_class_f1.items(), key=lambda kv: (kv[1], kv[0]))
        rows = [[escape(name), f"{score:.3f}"] for name, score in worst[:_CLASS_ROWS]]
        title = f"### Weakest classes ({len(rows)} lowest F1 of {len(worst)})"
        return ["", title, "", table(["class", "F1"], rows, right=(1,))]
    shared = set(candidate.per_class_f1) & set(champion.per_class_f1)
    deltas = sorted(shared, key=lambda c: (candidate.per_class_f1[c] - champion.per_class_f1[c], c))
    rows = []
    for name in deltas[:_CLASS_ROWS]:
        new, old = candidate.per_class_f1[name], champion.per_class_f1[name]
        rows.append([escape(name), f"{new:.3f}", f"{old:.3f}", f"{new - old:+.3f}"])
    headers = ["class", "candidate", "champion", "change"]
    title = f"### Largest per-class F1 drops ({len(rows)} of {len(shared)} classes)"
    return ["", title, "", table(headers, rows, right=(1, 2, 3))]


def _confusion_rows(confusions: Sequence[Confusion]) -> list[str]:
    if not confusions:
        return []
    rows = [
        [escape(c.truth), escape(c.predicted), figure(c.count), f"{c.share:.0%}"]
        for c in confusions
    ]
    headers = ["true class", "predicted as", "examples", "of the class"]
    return ["", "### Top confusions", "", table(headers, rows, right=(2, 3))]


def markdown_report(
    verdict: Verdict,
    candidate: Evaluation,
    champion: Evaluation | None,
    *,
    test_path: str,
    test_size: int,
    samples: Sequence[str] = (),
    plot_name: str | None = None,
    confusions: Sequence[Confusion] = (),
) -> str:
    title = "PASS" if verdict.passed else "FAIL"
    lines = [
        f"## Gate verdict for {escape(verdict.candidate)}: {title}",
        "",
        f"**{escape(verdict.reason)}**",
        "",
    ]
    # What the gate judged comes first; the headline metric and its interval are context.
    lines += ["### What the gate judged", "", *_checks(verdict), "", "### Against what", ""]
    split = f"{code(test_path)} ({test_size:,} examples)"
    if champion is None:
        lines.append(f"No champion: first model of the deployment. Test split: {split}.")
    else:
        lines.append(
            f"Champion {escape(champion.version)}, evaluated on the same test split {split} "
            "in this run."
        )
    if candidate.interval is not None:
        iv = candidate.interval
        lines.append(
            f"Candidate headline {escape(verdict.headline_metric)}: {iv.estimate:.4f}, "
            f"{iv.confidence:.0%} bootstrap CI "
            f"[{iv.low:.4f}, {iv.high:.4f}] ({iv.samples} resamples)."
        )
    if verdict.gain is not None:
        g = verdict.gain
        lines.append(
            f"Paired gain over the champion: {g.estimate:+.4f}, CI [{g.low:+.4f}, {g.high:+.4f}]"
            + (" — beyond noise." if g.low > 0 else " — within noise.")
        )
    if candidate.error is None:
        lines += ["", "### Metrics", "", *_metric_rows(candidate, champion)]
        lines += _class_rows(candidate, champion)
        lines += _confusion_rows(confusions)
    if samples:
        lines += ["", "### Generation samples (greedy)", ""]
        lines += [f"- {code(sample.strip()[:200])}" for sample in samples]
    if plot_name:
        lines += ["", f"![{PLOT_ALT}]({plot_name})"]
    return "\n".join(lines) + "\n"
