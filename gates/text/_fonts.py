"""A font for every character a plot writes, or a refusal: never empty boxes ("tofu").

Matplotlib's default font (DejaVu Sans) has no CJK glyphs; a label in Chinese would be drawn
as boxes with a warning nobody reads. :func:`fonts_for` reads the character maps of the fonts
matplotlib knows and those installed on the system (fontconfig's folders; the project's
scripts install ``fonts-wqy-microhei`` on Debian), and returns the default font followed by the
first one that covers what the default lacks; :class:`NoFontForText` names the characters
no font has. A "Last Resort" font (matplotlib 3.11 ships one) maps every code point to a box
naming its block: it covers everything and draws nothing readable, so it never counts (a CI
run whose checkout sorted before /usr/share picked it and drew Chinese labels as boxes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from conveyor.errors import ConveyorError

__all__ = ["INSTALL_HINT", "NoFontForText", "candidate_fonts", "fonts_for", "is_placeholder_font"]

INSTALL_HINT = (
    "install a CJK font: apt-get install fonts-wqy-microhei (Debian; .ci/run does), "
    "or put a .ttf/.ttc with the characters in ~/.local/share/fonts"
)


class NoFontForText(ConveyorError):
    """No installed font has glyphs for some characters of a plot's labels."""


@lru_cache(maxsize=64)
def _codepoints(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(path, fontNumber=0, lazy=True)
        table = font.getBestCmap() or {}
    except Exception:  # an unreadable font file covers nothing  # noqa: BLE001
        return frozenset()
    return frozenset(table)


@lru_cache(maxsize=64)
def _family(path: str) -> str:
    from fontTools.ttLib import TTFont

    try:
        return str(TTFont(path, fontNumber=0, lazy=True)["name"].getDebugName(1) or "")
    except Exception:  # an unreadable font file has no name  # noqa: BLE001
        return ""


def is_placeholder_font(path: Path) -> bool:
    """A Last Resort font: a box per Unicode block for every code point, never a glyph."""
    return _family(str(path)).casefold().startswith("last resort")


def candidate_fonts() -> list[Path]:
    """Matplotlib's default font first, then every font file matplotlib or the system has."""
    from matplotlib import font_manager

    default = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    known = [entry.fname for entry in font_manager.fontManager.ttflist]
    system = font_manager.findSystemFonts()
    return [Path(p) for p in dict.fromkeys([default, *sorted(known), *sorted(system)])]


def _needed(texts: Iterable[str]) -> set[str]:
    return {ch for text in texts for ch in text if ch.isprintable() and not ch.isspace()}


def fonts_for(texts: Iterable[str], candidates: Sequence[Path] | None = None) -> list[Path]:
    """The default font, and a second one when the default lacks some characters of ``texts``.

    Raises :class:`NoFontForText` naming the characters no candidate covers.
    """
    fonts = list(candidates) if candidates is not None else candidate_fonts()
    needed = _needed(texts)
    if not fonts:
        raise NoFontForText(f"no font installed to draw a plot; {INSTALL_HINT}")
    default, rest = fonts[0], fonts[1:]
    lacking = {ch for ch in needed if ord(ch) not in _codepoints(str(default))}
    if not lacking:
        return [default]
    for font in rest:
        covers = all(ord(ch) in _codepoints(str(font)) for ch in lacking)
        if covers and not is_placeholder_font(font):
            return [default, font]
    shown = "".join(sorted(lacking)[:20])
    raise NoFontForText(
        f"no installed font has glyphs for {len(lacking)} character(s) of the plot's labels "
        f"({shown}); refusing to draw empty boxes; {INSTALL_HINT}"
    )
