"""Markdown that renders as written: escaped text, safe code spans, narrow tables, round figures.

Reports are read both as files and in the Prefect UI, whose renderers differ: a threshold
written ``>= 0.85`` at the start of a line becomes a quote block, ``a_b_c`` may turn italic,
a ``|`` in a cell splits the table. Every report builds its text with these helpers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = ["code", "escape", "figure", "table"]

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])", flags=re.MULTILINE)


def escape(text: object) -> str:
    """``text`` as literal Markdown: emphasis, links, HTML, quotes and pipes stay characters."""
    escaped = _SPECIAL.sub(r"\\\1", str(text))
    return _LINE_START.sub(_escape_line_start, escaped)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker[0].isdigit():  # "1." starts an ordered list: escape its dot
        return f"{indent}{marker[:-1]}\\{marker[-1]}"
    return f"{indent}\\{marker}"


def code(text: object) -> str:
    """An inline code span that survives any content, in a table cell too."""
    body = " ".join(str(text).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def figure(value: float | int | None, digits: int = 4) -> str:
    """A number a person reads: ``digits`` decimals under 10, one decimal above, ints as is."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 10:
        return f"{value:.{digits}f}"
    return f"{value:,.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A GFM table of cells already escaped (or code spans); ``right``: right-aligned columns."""
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(" ".join(c.split()) for c in line) + " |" for line in lines)
