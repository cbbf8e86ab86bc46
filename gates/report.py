"""The verdict for people: a Markdown report and a PNG of the per-class picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gates.decide import Evaluation, Verdict

__all__ = ["markdown_report", "write_plot"]

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


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"


def _check_rows(verdict: Verdict) -> list[str]:
    rows = ["| check | value | threshold | result | detail |", "|---|---|---|---|---|"]
    for check in verdict.checks:
        threshold = f"{check.comparison} {_fmt(check.threshold)}" if check.comparison else "-"
        rows.append(
            f"| {check.name} | {_fmt(check.value)} | {threshold} "
            f"| **{check.outcome}** | {check.detail} |"
        )
    return rows


def _metric_rows(candidate: Evaluation, champion: Evaluation | None) -> list[str]:
    compared = champion is not None and champion.error is None
    header = "| metric | candidate | champion | change |" if compared else "| metric | candidate |"
    rows = [header, "|---|---|---|---|" if compared else "|---|---|"]
    for name in _SHOWN_METRICS:
        if name not in candidate.metrics:
            continue
        value = candidate.metrics[name]
        if compared and champion is not None and name in champion.metrics:
            other = champion.metrics[name]
            rows.append(f"| {name} | {_fmt(value)} | {_fmt(other)} | {value - other:+.4f} |")
        else:
            rows.append(f"| {name} | {_fmt(value)} |" + (" - | - |" if compared else ""))
    return rows


def _class_rows(candidate: Evaluation, champion: Evaluation | None) -> list[str]:
    if not candidate.per_class_f1:
        return []
    if champion is None or champion.error is not None or not champion.per_class_f1:
        worst = sorted(candidate.per_class_f1.items(), key=lambda kv: kv[1])[:_CLASS_ROWS]
        rows = [
            "",
            f"### Weakest classes (F1, {_CLASS_ROWS} lowest)",
            "",
            "| class | F1 |",
            "|---|---|",
        ]
        return rows + [f"| {name} | {score:.3f} |" for name, score in worst]
    shared = set(candidate.per_class_f1) & set(champion.per_class_f1)
    deltas = sorted(shared, key=lambda c: candidate.per_class_f1[c] - champion.per_class_f1[c])
    rows = ["", f"### Largest per-class F1 drops ({_CLASS_ROWS})", ""]
    rows += ["| class | candidate | champion | change |", "|---|---|---|---|"]
    for name in deltas[:_CLASS_ROWS]:
        new, old = candidate.per_class_f1[name], champion.per_class_f1[name]
        rows.append(f"| {name} | {new:.3f} | {old:.3f} | {new - old:+.3f} |")
    return rows


def markdown_report(
    verdict: Verdict,
    candidate: Evaluation,
    champion: Evaluation | None,
    *,
    test_path: str,
    test_size: int,
    samples: Sequence[str] = (),
    plot_name: str | None = None,
) -> str:
    title = "PASS" if verdict.passed else "FAIL"
    lines = [f"## Gate verdict for {verdict.candidate}: {title}", "", f"**{verdict.reason}**", ""]
    if champion is None:
        lines.append(
            "No champion: first model of the deployment. "
            f"Test split: `{test_path}` ({test_size:,} examples)."
        )
    else:
        lines.append(
            f"Champion {champion.version}, evaluated on the same test split `{test_path}` "
            f"({test_size:,} examples) in this run."
        )
    if candidate.interval is not None:
        iv = candidate.interval
        lines.append(
            f"Candidate {verdict.headline_metric}: {iv.estimate:.4f}, "
            f"{iv.confidence:.0%} bootstrap CI "
            f"[{iv.low:.4f}, {iv.high:.4f}] ({iv.samples} resamples)."
        )
    if verdict.gain is not None:
        g = verdict.gain
        lines.append(
            f"Paired gain over the champion: {g.estimate:+.4f}, CI [{g.low:+.4f}, {g.high:+.4f}]"
            + (" — beyond noise." if g.low > 0 else " — within noise.")
        )
    lines += ["", "### Checks", "", *_check_rows(verdict)]
    if candidate.error is None:
        lines += ["", "### Metrics", "", *_metric_rows(candidate, champion)]
        lines += _class_rows(candidate, champion)
    if samples:
        lines += ["", "### Generation samples (greedy)", ""]
        lines += [f"- `{sample.strip()[:200]}`" for sample in samples]
    if plot_name:
        lines += ["", f"![per-class F1]({plot_name})"]
    return "\n".join(lines) + "\n"


def write_plot(path: Path, candidate: Evaluation, champion: Evaluation | None) -> Path | None:
    """Per-class F1 (sorted), candidate against champion; None when there is nothing per class."""
    if not candidate.per_class_f1:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(candidate.per_class_f1, key=lambda c: candidate.per_class_f1[c])
    has_champion = champion is not None and champion.error is None and bool(champion.per_class_f1)
    figure, axes = plt.subplots(
        1, 2 if has_champion else 1, figsize=(13 if has_champion else 8, 4.5)
    )
    first = axes[0] if has_champion else axes
    positions = range(len(names))
    first.plot(positions, [candidate.per_class_f1[c] for c in names], label=candidate.version, lw=2)
    if has_champion and champion is not None:
        first.plot(
            positions,
            [champion.per_class_f1.get(c, 0.0) for c in names],
            label=champion.version,
            lw=1,
            alpha=0.8,
        )
        deltas = sorted(
            candidate.per_class_f1[c] - champion.per_class_f1.get(c, 0.0) for c in names
        )
        colors = ["tab:red" if d < 0 else "tab:green" for d in deltas]
        axes[1].bar(range(len(deltas)), deltas, color=colors, width=1.0)
        axes[1].axhline(0, color="black", lw=0.8)
        axes[1].set_title("per-class F1 change, candidate − champion (sorted)")
        axes[1].set_xlabel("classes")
        axes[1].set_ylabel("ΔF1")
    first.set_title(f"per-class F1 ({len(names)} classes, sorted by candidate)")
    first.set_xlabel("classes")
    first.set_ylabel("F1")
    first.set_ylim(0, 1.02)
    first.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
