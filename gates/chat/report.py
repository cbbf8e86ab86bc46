"""The generative verdict for people: checks, metrics of both models, golden suite, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gates.bootstrap import Interval
from gates.chat.evaluate import GenerationJudgement
from gates.chat.golden import GoldenResult
from gates.chat.side_by_side import side_by_side_markdown

__all__ = ["generation_markdown", "generation_payload"]

_SHOWN = (
    ("bleu", "BLEU"),
    ("rouge_l", "ROUGE-L"),
    ("chrf", "chrF"),
    ("omission_rate", "answers omitting a fact"),
    ("hallucination_rate", "answers contradicting or adding a fact"),
    ("echo_rate", "answers echoing the structured input"),
    ("fact_error_rate", "answers with any fact error"),
    ("slot_error_rate", "slot error rate"),
    ("task_accuracy", "task accuracy"),
    ("perplexity", "perplexity of the references"),
    ("answer_tokens_per_s", "answer tokens per second (greedy)"),
    ("model_size_mb", "weights on disk (MB)"),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    return (
        f"{interval.estimate:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] "
        f"({interval.confidence:.0%}, {interval.samples} resamples)"
    )


def _checks(judgement: GenerationJudgement) -> list[str]:
    rows = ["| check | value | threshold | result | detail |", "|---|---|---|---|---|"]
    for check in judgement.verdict.checks:
        threshold = f"{check.comparison} {_fmt(check.threshold)}" if check.comparison else "-"
        rows.append(
            f"| {check.name} | {_fmt(check.value)} | {threshold} | **{check.outcome}** "
            f"| {check.detail} |"
        )
    return rows


def _metrics(judgement: GenerationJudgement) -> list[str]:
    ours = judgement.candidate.metrics
    theirs = judgement.champion.metrics if judgement.champion else {}
    rows = ["| metric | candidate | champion | change |", "|---|---|---|---|"]
    for key, name in _SHOWN:
        if key not in ours:
            continue
        other = theirs.get(key)
        change = f"{ours[key] - other:+.4f}" if other is not None else "-"
        rows.append(f"| {name} | {_fmt(ours[key])} | {_fmt(other)} | {change} |")
    return rows


def _golden(results: Sequence[GoldenResult] | None) -> list[str]:
    if results is None:
        return ["_No golden suite in this recipe (`gates.generation.golden`)._"]
    rows = ["| case | result | answer |", "|---|---|---|"]
    for result in results:
        outcome = "pass" if result.passed else "**fail**: " + "; ".join(result.failures)
        answer = " ".join(result.answer.split()).replace("|", "\\|")[:200]
        rows.append(f"| {result.name} | {outcome} | {answer} |")
    return rows


def generation_markdown(
    judgement: GenerationJudgement,
    *,
    test_path: str,
    prompts: int,
    golden: Sequence[GoldenResult] | None,
) -> str:
    """The whole report as Markdown (also the Prefect artifact)."""
    verdict = judgement.verdict
    champion = verdict.champion or "none"
    headline = verdict.headline_metric
    lines = [
        f"# Gate verdict: {verdict.candidate}",
        "",
        f"**{'PASSED' if verdict.passed else 'FAILED'}** — {verdict.reason}",
        "",
        f"champion: {champion} · test split: `{test_path}` · {prompts} prompts, greedy answers",
        "",
        "## Checks",
        "",
        *_checks(judgement),
        "",
        "## Metrics (same prompts for both models)",
        "",
        *_metrics(judgement),
        "",
        f"{headline} of the candidate, bootstrap: {_interval(judgement.interval)}  ",
        f"{headline} gain over the champion, paired bootstrap: {_interval(verdict.gain)}",
        "",
        "## Golden suite (must pass whole)",
        "",
        *_golden(golden),
        "",
        f"## Where the two differ most (ROUGE-L per prompt; champion {champion})",
        "",
        side_by_side_markdown(judgement.side_by_side, champion, verdict.candidate),
    ]
    return "\n".join(lines)


def generation_payload(judgement: GenerationJudgement) -> dict[str, Any]:
    """What is stored with the version: the verdict, both models' metrics, intervals, examples."""
    verdict = judgement.verdict
    return {
        **verdict.as_dict(),
        "candidate_metrics": judgement.candidate.metrics,
        "champion_metrics": judgement.champion.metrics if judgement.champion else None,
        "candidate_interval": judgement.interval.as_dict() if judgement.interval else None,
        "golden_failures": list(judgement.candidate.golden_failures or ()),
        "side_by_side": [row.as_dict() for row in judgement.side_by_side],
    }
