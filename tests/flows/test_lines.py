"""The flows' log lines and promotion artifact say sentences, never Python values."""

from __future__ import annotations

from flows.lines import (
    Promotion,
    log_line,
    metrics_text,
    outcome_text,
    promotion_lines,
    run_lineage,
)


def test_metrics_read_as_figures_with_counts_as_integers() -> None:
    said = metrics_text({"train_steps": 400.0, "validation_accuracy": 0.94126, "history": [1]})
    assert said == "train_steps 400, validation_accuracy 0.9413"


def test_an_outcome_is_one_sentence() -> None:
    outcome = {
        "deployment": "intents",
        "version": "intents:v2",
        "champion": "intents:v1",
        "passed": True,
        "promoted": True,
        "reason": "pass: all 3 checks passed",
        "promotion": {"state": "completed"},
    }
    assert outcome_text(outcome) == (
        "intents:v2 promoted: production of intents is intents:v2 (champion was intents:v1): "
        "pass: all 3 checks passed"
    )


def test_the_promotion_artifact_and_its_log_line() -> None:
    lines = promotion_lines(
        Promotion(
            deployment="intents",
            version="intents:v2",
            previous="intents:v1",
            production="intents:v2",
            rolled_back=False,
            how="canary 10% for 60 s",
            state="completed",
            written="2026-12-05 13:40:02 UTC",
            workers=["w:1:0"],
            endpoints=["http://127.0.0.1:3000"],
            load_seconds=0.5,
            converge_seconds=61.2,
        )
    )
    assert lines[0] == "## Promoted: intents:v2"
    assert (
        "- when this was written (2026-12-05 13:40:02 UTC): served by 1 live worker(s): w:1:0"
        in lines
    )
    assert "- endpoint: http://127.0.0.1:3000 (Swagger UI at its root)" in lines
    said = log_line(lines)
    assert said.startswith("Promoted: intents:v2; production: intents:v1 -> intents:v2; ")
    assert not any(mark in said for mark in ("#", "**", "{", "- "))


def test_the_run_that_made_a_version() -> None:
    assert run_lineage(None, None) == {}
    assert run_lineage("abc", "None/flow-runs/flow-run/abc") == {"flow_run_id": "abc"}
    url = "http://127.0.0.1:4200/flow-runs/flow-run/abc"
    assert run_lineage("abc", url) == {"flow_run_id": "abc", "flow_run_url": url}
