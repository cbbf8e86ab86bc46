"""The text path of ``evaluate_version``: both models over the test split, judged, reported.

Takes the registry's records of the candidate and its champion (none for the first model of
a deployment) and the folder the plot goes to; the caller writes the report and records the
verdict. An unloadable model is judged "artifact unloadable", never raised.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from conveyor.recipe import Recipe
from conveyor.registry import VersionRecord
from gates.text._fonts import NoFontForText
from gates.text.decide import decide
from gates.text.evaluate import read_test_set, run_model, score_pair
from gates.text.plot import write_plot
from gates.text.report import markdown_report, top_confusions
from gates.verdict import Judgement

__all__ = ["judge_text_version"]

log = logging.getLogger(__name__)


def judge_text_version(
    recipe: Recipe, candidate: VersionRecord, champion: VersionRecord | None, folder: Path
) -> Judgement:
    """Candidate and champion on the recipe's test split, in this run; verdict and report."""
    test = read_test_set(recipe)
    log.info("evaluating %s on %s (%d examples)", candidate.version, test.path, len(test.texts))
    max_length = recipe.model.max_length
    candidate_run = run_model(
        candidate.version, candidate.artifact_uri, recipe.task, test, max_length
    )
    champion_run = None
    if champion is not None:
        log.info("evaluating champion %s on the same split", champion.version)
        champion_run = run_model(
            champion.version, champion.artifact_uri, recipe.task, test, max_length
        )
    ours, theirs, gain = score_pair(test, candidate_run, champion_run, recipe.gates)
    verdict = decide(ours, theirs, recipe.gates, gain)
    scores = candidate_run.scores
    confusions = top_confusions(scores.labels, scores.confusion) if scores else []
    try:
        plot = write_plot(
            folder / "per_class_f1.png", ours, theirs, confusions, verdict.checks, verdict.passed
        )
    except NoFontForText as exc:  # the report goes on without a plot of empty boxes
        log.warning("no gate plot: %s", exc)
        plot = None
    report = markdown_report(
        verdict,
        ours,
        theirs,
        test_path=str(test.path),
        test_size=len(test.texts),
        samples=candidate_run.samples,
        plot_name=plot.name if plot else None,
        confusions=confusions,
    )
    payload = {
        **verdict.as_dict(),
        "plot_path": str(plot) if plot else None,
        "candidate_metrics": ours.metrics,
        "champion_metrics": theirs.metrics if theirs else None,
        "candidate_interval": ours.interval.as_dict() if ours.interval else None,
        "test_split": str(test.path),
        "test_size": len(test.texts),
        "confusion_labels": scores.labels if scores else None,
        "top_confusions": [asdict(c) for c in confusions],
    }
    return Judgement(verdict, ours, theirs, report, payload, plot)
