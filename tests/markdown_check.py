"""Render Markdown as a CommonMark + GFM-tables renderer does, and look at what came out."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from markdown_it import MarkdownIt

_RENDERER = MarkdownIt("commonmark").enable("table")


def render(markdown: str) -> str:
    return _RENDERER.render(markdown)


@dataclass
class Rendered(HTMLParser):
    """Tags seen, the text, and every table as rows of cell texts."""

    tags: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    in_cell: bool = False

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.in_cell:
            self.tables[-1][-1][-1] += data


def parse(markdown: str) -> Rendered:
    found = Rendered()
    found.feed(render(markdown))
    return found


def assert_renders_literally(markdown: str) -> Rendered:
    """No quote blocks, no emphasis or links made from the data, every table rectangular."""
    found = parse(markdown)
    for tag in ("blockquote", "em", "a", "h4", "ol"):
        assert tag not in found.tags, (tag, markdown)
    for rows in found.tables:
        widths = {len(row) for row in rows}
        assert len(widths) == 1, rows
    return found
