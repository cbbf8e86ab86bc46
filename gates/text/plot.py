"""The gate's picture: what the gate judged on top, the weakest classes, the top confusions.

Drawn for where it is read: on a 1440 px wide window the Prefect UI shows an artifact's
image 690 px wide (the current UI; 846 px in the older one), so it is drawn 690 px wide and
shown at 1:1 in both (never shrunk: labels keep their point size), the panels stacked.
The background is transparent and every mark has a colour that reads on the UI's light and
dark themes alike (contrast of 4.5 or more on white and 3 or more on a near-black). The
legend sits above the plot area, never over a bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gates.text._fonts import fonts_for
from gates.text.report import Confusion
from gates.verdict import Evaluation, GateCheck

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["INK", "SHOWN_WIDTH_PX", "draw_plot", "judged_lines", "write_plot"]

SHOWN_WIDTH_PX = 690  # the Prefect UI's artifact column at 1440 px (v2; v1: 846), measured
DPI = 100
INK = "#767676"  # text, axes, ticks: 4.5:1 on white, 4.7:1 on black
CANDIDATE = "#3b82f6"  # bars
CHAMPION = "#d97706"  # the champion's mark
CONFUSED = "#ef4444"
FONT_PT = 11.0
_PLOT_CLASSES = 15
_ROW_IN = 0.28  # height per bar


def judged_lines(checks: Sequence[GateCheck], passed: bool) -> list[str]:
    """The verdict, then each check that decided it (a threshold), as the gate said it."""
    decided = [c for c in checks if c.comparison and c.outcome in {"pass", "fail"}]
    head = "PASS" if passed else "FAIL"
    return [f"gate {head}: what it judged"] + [f"{c.outcome}: {c.detail}" for c in decided]


def _weakest_panel(ax: Axes, candidate: Evaluation, champion: Evaluation | None) -> None:
    names = sorted(candidate.per_class_f1, key=lambda c: (candidate.per_class_f1[c], c))
    names = names[:_PLOT_CLASSES][::-1]  # weakest at the top
    positions = list(range(len(names)))
    bars = ax.barh(
        positions,
        [candidate.per_class_f1[c] for c in names],
        color=CANDIDATE,
        label=f"{candidate.version} (candidate)",
    )
    ax.bar_label(bars, fmt="%.2f", padding=3, color=INK)
    if champion is not None and champion.error is None and champion.per_class_f1:
        ax.scatter(
            [champion.per_class_f1.get(c, 0.0) for c in names],
            positions,
            color=CHAMPION,
            marker="|",
            s=260,
            linewidths=3,
            label=f"{champion.version} (champion)",
            zorder=3,
        )
    ax.set_yticks(positions, names)
    ax.set_xlim(0, 1.12)  # room for the value labels right of a bar at 1.0
    ax.set_xlabel("F1 on the test split")
    # The legend is the panel's title line, above the plot area: it cannot cover a bar.
    legend = ax.legend(
        title=f"{len(names)} weakest of {len(candidate.per_class_f1)} classes (F1)",
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncols=2,
        frameon=False,
        labelcolor=INK,
        alignment="left",
        borderaxespad=0.0,
    )
    legend.get_title().set_color(INK)


def _confusion_panel(ax: Axes, confusions: Sequence[Confusion]) -> None:
    from matplotlib.ticker import MaxNLocator

    shown = list(confusions)[::-1]
    positions = list(range(len(shown)))
    bars = ax.barh(positions, [c.count for c in shown], color=CONFUSED)
    ax.bar_label(bars, [f"{c.count} ({c.share:.0%})" for c in shown], padding=3, color=INK)
    ax.margins(x=0.2)
    ax.set_yticks(positions, [f"{c.truth}\n→ {c.predicted}" for c in shown])
    ax.set_xlabel("test examples (share of the true class)")
    ax.set_title("top confusions: true → predicted", loc="left")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _labels(
    candidate: Evaluation, confusions: Sequence[Confusion], title: Sequence[str]
) -> list[str]:
    labels = [*candidate.per_class_f1, candidate.version, *title]
    return labels + [f"{c.truth} → {c.predicted}" for c in confusions]


def _font_families(texts: Sequence[str]) -> list[str]:
    """Family names of the fonts that draw ``texts`` (the default, then a CJK one if needed)."""
    from matplotlib import font_manager

    names = []
    for path in fonts_for(texts):
        font_manager.fontManager.addfont(str(path))
        names.append(font_manager.FontProperties(fname=str(path)).get_name())
    return names


def draw_plot(
    candidate: Evaluation,
    champion: Evaluation | None,
    confusions: Sequence[Confusion] = (),
    checks: Sequence[GateCheck] = (),
    passed: bool = True,
) -> Figure:
    """The figure (the caller closes it); see :func:`write_plot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = judged_lines(checks, passed) if checks else []
    families = _font_families(_labels(candidate, confusions, title))
    weakest = min(_PLOT_CLASSES, len(candidate.per_class_f1))
    heights = [weakest * _ROW_IN + 1.3]
    if confusions:
        heights.append(len(confusions) * 2 * _ROW_IN + 1.0)  # two-line labels
    head = 0.25 * len(title) + 0.2
    style = {
        "font.family": families,
        "font.size": FONT_PT,
        "text.color": INK,
        "axes.labelcolor": INK,
        "axes.edgecolor": INK,
        "axes.titlecolor": INK,
        "axes.facecolor": "none",
        "figure.facecolor": "none",
        "xtick.color": INK,
        "ytick.color": INK,
        "savefig.transparent": True,
    }
    with plt.rc_context(style):  # type: ignore[arg-type]
        figure = plt.figure(
            figsize=(SHOWN_WIDTH_PX / DPI, sum(heights) + head), dpi=DPI, layout="constrained"
        )
        if title:
            figure.suptitle("\n".join(title), x=0.01, ha="left", fontsize=FONT_PT + 1)
        # One sub-figure per panel: each keeps the left margin its own labels need.
        panels = figure.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
        _weakest_panel(panels[0].subplots(), candidate, champion)
        if confusions:
            _confusion_panel(panels[1].subplots(), confusions)
    return figure


def write_plot(
    path: Path,
    candidate: Evaluation,
    champion: Evaluation | None,
    confusions: Sequence[Confusion] = (),
    checks: Sequence[GateCheck] = (),
    passed: bool = True,
) -> Path | None:
    """What the gate judged (``checks``), the weakest classes by name (champion marked) and
    the top confusions, as a PNG :data:`SHOWN_WIDTH_PX` wide; None if the model has no classes.

    Labels in a script the default font lacks (Chinese class names) are drawn with an installed
    font that has them; with none, :class:`NoFontForText` is raised instead of drawing boxes.
    """
    if not candidate.per_class_f1:
        return None
    import matplotlib.pyplot as plt

    figure = draw_plot(candidate, champion, confusions, checks, passed)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
