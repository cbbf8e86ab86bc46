"""The prompts where champion and candidate wrote most differently, for a person to read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SideBySide", "most_different", "side_by_side_markdown"]


@dataclass(frozen=True)
class SideBySide:
    prompt: str
    reference: str
    champion: str
    candidate: str
    champion_score: float
    candidate_score: float

    @property
    def difference(self) -> float:
        return self.candidate_score - self.champion_score

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"difference": self.difference}


def most_different(
    prompts: Sequence[str],
    references: Sequence[Sequence[str]],
    champion: Sequence[str],
    candidate: Sequence[str],
    champion_scores: Sequence[float],
    candidate_scores: Sequence[float],
    count: int,
) -> list[SideBySide]:
    """The ``count`` prompts with the largest score difference (either way), outputs differing."""
    rows = [
        SideBySide(p, refs[0], a, b, float(sa), float(sb))
        for p, refs, a, b, sa, sb in zip(
            prompts, references, champion, candidate, champion_scores, candidate_scores, strict=True
        )
        if a.strip() != b.strip()
    ]
    ranked = sorted(enumerate(rows), key=lambda item: (-abs(item[1].difference), item[0]))
    return [row for _, row in ranked[:count]]


def _cell(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def side_by_side_markdown(rows: Sequence[SideBySide], champion: str, candidate: str) -> str:
    """A Markdown table: prompt, a reference, both outputs and their per-prompt scores."""
    if not rows:
        return "_The two models wrote the same answers on every prompt compared._\n"
    lines = [
        f"| prompt | reference | champion ({champion}) | candidate ({candidate}) | Δ score |",
        "|---|---|---|---|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {_cell(row.prompt)} | {_cell(row.reference)} | {_cell(row.champion)} "
            f"({row.champion_score:.2f}) | {_cell(row.candidate)} ({row.candidate_score:.2f}) "
            f"| {row.difference:+.2f} |"
        )
    return "\n".join(lines) + "\n"
