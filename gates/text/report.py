"""The verdict for people: a Markdown report and a PNG of the weakest classes and top confusions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.markdown import code, escape, figure, table
from gates.text._fonts import fonts_for
from gates.verdict import Evaluation, GateCheck, Verdict

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_ALT", "Confusion", "markdown_report", "top_confusions", "write_plot"]

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
_PLOT_CLASSES = 15


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
            f"Candidate {escape(verdict.headline_metric)}: {iv.estimate:.4f}, "
            f"{iv.confidence:.0%} bootstrap CI "
            f"[{iv.low:.4f}, {iv.high:.4f}] ({iv.samples} resamples)."
        )
    if verdict.gain is not None:
        g = verdict.gain
        lines.append(
            f"Paired gain over the champion: {g.estimate:+.4f}, CI [{g.low:+.4f}, {g.high:+.4f}]"
            + (" — beyond noise." if g.low > 0 else " — within noise.")
        )
    lines += ["", "### Checks", "", *_checks(verdict)]
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


def _weakest_panel(ax: Axes, candidate: Evaluation, champion: Evaluation | None) -> None:
    names = sorted(candidate.per_class_f1, key=lambda c: (candidate.per_class_f1[c], c))
    names = names[:_PLOT_CLASSES][::-1]  # weakest at the top
    positions = list(range(len(names)))
    bars = ax.barh(
        positions,
        [candidate.per_class_f1[c] for c in names],
        color="tab:blue",
        label=candidate.version,
    )
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    if champion is not None and champion.error is None and champion.per_class_f1:
        ax.scatter(
            [champion.per_class_f1.get(c, 0.0) for c in names],
            positions,
            color="black",
            marker="|",
            s=200,
            label=f"{champion.version} (champion)",
            zorder=3,
        )
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("F1 on the test split")
    ax.set_title(f"{len(names)} weakest of {len(candidate.per_class_f1)} classes (candidate F1)")
    ax.legend(loc="lower right", fontsize=8)


def _confusion_panel(ax: Axes, confusions: Sequence[Confusion]) -> None:
    shown = list(confusions)[::-1]
    positions = list(range(len(shown)))
    bars = ax.barh(positions, [c.count for c in shown], color="tab:red")
    ax.bar_label(bars, [f"{c.count} ({c.share:.0%})" for c in shown], padding=3, fontsize=8)
    ax.margins(x=0.15)
    labels = [f"{c.truth} → {c.predicted}" for c in shown]
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel("test examples")
    ax.set_title("top confusions: true → predicted (share)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plot_labels(candidate: Evaluation, confusions: Sequence[Confusion]) -> list[str]:
    labels = [*candidate.per_class_f1, candidate.version]
    return labels + [f"{c.truth} → {c.predicted}" for c in confusions]


def _font_families(texts: Sequence[str]) -> list[str]:
    """Family names of the fonts that draw ``texts`` (the default, then a CJK one if needed)."""
    from matplotlib import font_manager

    names = []
    for path in fonts_for(texts):
        font_manager.fontManager.addfont(str(path))
        names.append(font_manager.FontProperties(fname=str(path)).get_name())
    return names


def write_plot(
    path: Path,
    candidate: Evaluation,
    champion: Evaluation | None,
    confusions: Sequence[Confusion] = (),
) -> Path | None:
    """The weakest classes by name (champion marked) and the top confusions; None if no classes.

    Labels in a script the default font lacks (Chinese class names) are drawn with an installed
    font that has them; with none, :class:`NoFontForText` is raised instead of drawing boxes.
    """
    if not candidate.per_class_f1:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = _font_families(_plot_labels(candidate, confusions))
    panels = 2 if confusions else 1
    with plt.rc_context({"font.family": families}):
        figure_, axes = plt.subplots(1, panels, figsize=(7 * panels, 5.5))
        first = axes[0] if panels == 2 else axes
        _weakest_panel(first, candidate, champion)
        if confusions:
            _confusion_panel(axes[1], confusions)
        figure_.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure_.savefig(path, dpi=100)
    plt.close(figure_)
    return path
