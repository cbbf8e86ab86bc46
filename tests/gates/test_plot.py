"""The gate plot is drawn for where it is read: as wide as the UI's artifact column (690 px),
readable labels, the legend off the bars, marks that read on a light and a dark theme, and
what the gate judged on top."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gates.text.plot import INK, SHOWN_WIDTH_PX, draw_plot, write_plot
from gates.text.report import top_confusions
from gates.verdict import Evaluation, GateCheck

pytestmark = pytest.mark.unit

CLASSES = [f"class_{i:03d}_long_intent_name" for i in range(150)]
CHECKS = [
    GateCheck("min_accuracy", 0.8113, 0.7, ">=", "pass", "accuracy 0.8113 >= 0.7000"),
    GateCheck(
        "min_in_scope_accuracy", 0.9413, 0.9, ">=", "pass", "in-scope accuracy 0.9413 >= 0.9000"
    ),
    GateCheck("known_test_labels", 0.0, 0.0, "<=", "warn", "all test labels known"),
]


def _luminance(colour: str) -> float:
    from matplotlib.colors import to_rgb

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _evaluations() -> tuple[Evaluation, Evaluation]:
    scores = {name: (i % 97) / 100 + 0.03 for i, name in enumerate(CLASSES)}
    scores[CLASSES[0]] = 1.0
    ours = Evaluation("clinc:v2", "classification", metrics={}, per_class_f1=scores)
    theirs = Evaluation(
        "clinc:v1", "classification", metrics={}, per_class_f1={c: 0.5 for c in CLASSES}
    )
    return ours, theirs


def test_drawn_at_the_width_it_is_shown_and_transparent(tmp_path: Path) -> None:
    ours, theirs = _evaluations()
    path = write_plot(tmp_path / "plot.png", ours, theirs, (), CHECKS, True)
    assert path is not None
    header = path.read_bytes()[:26]
    width, height = struct.unpack(">II", header[16:24])
    assert width == SHOWN_WIDTH_PX and 300 < height < 1400
    assert header[25] == 6  # RGBA: a transparent background, no white card on a dark theme


def test_labels_are_readable_and_the_legend_covers_no_bar() -> None:
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    ours, theirs = _evaluations()
    matrix = [[0] * 5 for _ in range(5)]
    matrix[2][0], matrix[3][1] = 4, 2
    confusions = top_confusions(CLASSES[:5], matrix)
    figure = draw_plot(ours, theirs, confusions, CHECKS, True)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = [t for t in figure.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 10, "labels under 10 pt at 1:1"
    width = figure.bbox.width
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    # Straddling an edge is cut; wholly outside is a tick beyond the axis, never drawn.
    cut = [text for text, b in boxes if b.x0 < 0 < b.x1 or b.x0 < width < b.x1 - 0.5]
    assert not cut, f"cut off at the figure's edge: {cut}"
    weakest = figure.axes[0]
    legend = weakest.get_legend()
    assert legend is not None
    box = legend.get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in weakest.patches if isinstance(p, Rectangle)]
    assert bars and not [b for b in bars if box.overlaps(b)], "legend over a bar"
    [champion] = [c for c in weakest.collections if isinstance(c, PathCollection)]
    half = (champion.get_sizes()[0] ** 0.5) * figure.dpi / 72 / 2  # the mark's half height, px
    tops = weakest.transData.transform(champion.get_offsets())[:, 1] + half
    assert max(tops) < box.y0, "legend over the champion's marks"
    assert box.y0 >= weakest.get_window_extent(renderer).y1, "legend inside the plot area"
    assert box.x1 <= figure.bbox.width and box.x0 >= 0, "legend cut off"
    from matplotlib.colors import to_hex

    for colour in {INK, *(to_hex(t.get_color()) for t in texts)}:
        assert _contrast(colour, "#ffffff") >= 4.5, colour  # the light theme
        assert _contrast(colour, "#1b1d21") >= 3.0, colour  # a dark theme's background
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_it_leads_with_what_the_gate_judged() -> None:
    ours, theirs = _evaluations()
    figure = draw_plot(ours, theirs, (), CHECKS, True)
    lines = figure.get_suptitle().splitlines()
    assert lines == [
        "gate PASS: what it judged",
        "pass: accuracy 0.8113 >= 0.7000",
        "pass: in-scope accuracy 0.9413 >= 0.9000",
    ]
    import matplotlib.pyplot as plt

    plt.close(figure)
