"""The verdict report renders as written, rounds its figures, and names the classes it plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.bootstrap import Interval
from gates.text.plot import write_plot
from gates.text.report import PLOT_ALT, markdown_report, top_confusions
from gates.verdict import Evaluation, GateCheck, Verdict
from tests.markdown_check import assert_renders_literally

pytestmark = pytest.mark.unit

LABELS = ["what_is_your_name", "book_flight", "oos", "pay*bill", "a|b"]


def _evaluation(version: str, scores: list[float]) -> Evaluation:
    return Evaluation(
        version,
        "classification",
        metrics={"accuracy": 0.9413333333333334, "macro_f1": 0.91234567, "p99_ms_batch1": 12.3456},
        per_class_f1=dict(zip(LABELS, scores, strict=True)),
        interval=Interval(0.9413333, 0.93, 0.95, 0.95, 1000),
    )


def _verdict() -> Verdict:
    checks = [
        GateCheck(
            "min_accuracy", 0.9413333333333334, 0.85, ">=", "pass", "accuracy 0.9413 >= 0.85"
        ),
        GateCheck(
            "max_f1_drop", -0.0312345, 0.02, "<=", "fail", "macro_f1 dropped by > 0.02 *a lot*"
        ),
    ]
    return Verdict(
        "demo:v2", "demo:v1", False, "fail: macro_f1 dropped by > 0.02", checks, "accuracy"
    )


def test_the_report_renders_literally_with_round_figures() -> None:
    candidate = _evaluation("demo:v2", [0.5, 0.9, 0.2, 0.7, 0.95])
    champion = _evaluation("demo:v1", [0.6, 0.8, 0.3, 0.7, 0.9])
    matrix = [[8, 2, 0, 0, 0], [0, 9, 1, 0, 0], [3, 0, 5, 2, 0], [0, 0, 0, 10, 0], [0, 0, 0, 0, 10]]
    confusions = top_confusions(LABELS, matrix, n=3)
    assert [(c.truth, c.predicted, c.count) for c in confusions] == [
        ("oos", "what_is_your_name", 3),
        ("oos", "pay*bill", 2),
        ("what_is_your_name", "book_flight", 2),
    ]
    report = markdown_report(
        _verdict(),
        candidate,
        champion,
        test_path="/data/test_split.jsonl",
        test_size=5500,
        plot_name="per_class_f1.png",
        confusions=confusions,
    )
    found = assert_renders_literally(report.replace(f"![{PLOT_ALT}](per_class_f1.png)", ""))
    text = "".join(found.text)
    assert "0.94133" not in report and "0.9413" in text
    for label in LABELS:
        assert label in text, label
    assert "*a lot*" in text and "> 0.02" in text  # asterisks and '>' stay characters
    checks = found.tables[0]
    assert checks[0] == ["check", "value", "threshold", "result"]
    assert checks[1] == ["min_accuracy", "0.9413", ">= 0.8500", "pass"]
    assert checks[2][3] == "FAIL"
    assert ["oos", "what_is_your_name", "3", "30%"] in found.tables[-1]
    assert all(len(table[0]) <= 4 for table in found.tables)  # narrow tables


def test_the_plot_names_the_weakest_classes_and_the_top_confusions(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from gates.text.plot import _confusion_panel, _weakest_panel

    candidate = _evaluation("demo:v2", [0.5, 0.9, 0.2, 0.7, 0.95])
    champion = _evaluation("demo:v1", [0.6, 0.8, 0.3, 0.7, 0.9])
    confusions = top_confusions(
        LABELS, [[8, 2, 0, 0, 0], [0] * 5, [3, 0, 5, 2, 0], [0] * 5, [0] * 5]
    )
    figure, (left, right) = plt.subplots(1, 2)
    _weakest_panel(left, candidate, champion)
    _confusion_panel(right, confusions)
    ticks = [t.get_text() for t in left.get_yticklabels()]
    assert ticks[-1] == "oos" and ticks[-2] == "what_is_your_name"  # weakest at the top
    assert [t.get_text() for t in right.get_yticklabels()][-1] == "oos\n→ what_is_your_name"
    plt.close(figure)

    path = write_plot(tmp_path / "plot.png", candidate, champion, confusions)
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
