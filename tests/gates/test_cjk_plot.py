"""The gate plot draws Chinese class names with a font that has them, or refuses to draw."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from gates.text._fonts import NoFontForText, candidate_fonts, fonts_for, is_placeholder_font
from gates.text.plot import write_plot
from gates.text.report import top_confusions
from gates.verdict import Evaluation

pytestmark = pytest.mark.unit

CHINESE = ["体育", "科学/技术", "旅游", "娱乐", "政治"]


def _evaluation(version: str, scores: list[float]) -> Evaluation:
    return Evaluation(
        version, "classification", per_class_f1=dict(zip(CHINESE, scores, strict=True))
    )


def test_english_labels_need_only_the_default_font() -> None:
    assert len(fonts_for(["book_flight", "oos → what_is_your_name"])) == 1


def test_chinese_labels_are_drawn_with_a_cjk_font_and_no_glyph_is_missing(tmp_path: Path) -> None:
    fonts = fonts_for(CHINESE)  # .ci/run installs fonts-wqy-microhei when no CJK font is there
    assert len(fonts) == 2, "the default font has no CJK glyphs: a second font is needed"
    candidate = _evaluation("sib:v2", [0.9, 0.4, 0.7, 0.5, 0.8])
    champion = _evaluation("sib:v1", [0.8, 0.5, 0.6, 0.6, 0.7])
    confusions = top_confusions(CHINESE, [[5, 1, 0, 0, 0], [2, 3, 0, 0, 0]] + [[0] * 5] * 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Gg]lyph.*missing.*")  # matplotlib's tofu
        path = write_plot(tmp_path / "plot.png", candidate, champion, confusions)
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_default_font_alone_draws_boxes_so_the_plot_refuses() -> None:
    default = candidate_fonts()[:1]
    with pytest.raises(NoFontForText) as refused:
        fonts_for(CHINESE, candidates=default)
    message = str(refused.value)
    assert "体" in message and "fonts-wqy-microhei" in message


def _last_resort() -> Path:
    import matplotlib

    found = sorted(Path(matplotlib.get_data_path()).rglob("LastResort*.ttf"))
    if not found:
        pytest.skip("this matplotlib ships no Last Resort font")
    return found[0]


def test_a_last_resort_font_never_counts_as_covering_chinese() -> None:
    """matplotlib 3.11's Last Resort font maps every code point to a box: listed before the
    CJK font (a checkout under /tmp sorts before /usr/share), it was chosen, and CI's plot
    drew every Chinese label as a box with no warning."""
    default, last_resort = candidate_fonts()[0], _last_resort()
    cjk = [font for font in candidate_fonts() if font != default and not is_placeholder_font(font)]
    chinese = fonts_for(CHINESE, candidates=[default, *cjk])[1]
    assert is_placeholder_font(last_resort) and not is_placeholder_font(chinese)
    assert fonts_for(CHINESE, candidates=[default, last_resort, chinese]) == [default, chinese]
    with pytest.raises(NoFontForText):
        fonts_for(CHINESE, candidates=[default, last_resort])


def test_the_font_chosen_from_what_is_installed_is_a_real_one() -> None:
    assert not any(is_placeholder_font(font) for font in fonts_for(CHINESE))
