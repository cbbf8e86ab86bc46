"""Evaluation gates: champion against challenger on one test split, with readable reasons.

``decide(candidate, champion, gates, gain)`` is the pure judgement; ``evaluate_version``
loads both models, scores them, decides, writes the report and records the verdict.

One sub-package per data format of the recipe, with the same module names: ``text/``
(classifiers and plain-text language models) and ``chat/`` (generated answers). Both
assemble their verdict with :mod:`gates.verdict`; dataset-specific checks are task
plug-ins in ``plugins/``.
"""

from gates.bootstrap import Interval, bootstrap_interval, paired_difference_interval
from gates.footprint import footprint
from gates.run import GateOutcome, evaluate_version, find_champion
from gates.text.decide import decide
from gates.text.scoring import ClassificationScores, score_classification
from gates.verdict import Evaluation, GateCheck, Verdict

__all__ = [
    "ClassificationScores",
    "Evaluation",
    "GateCheck",
    "GateOutcome",
    "Interval",
    "Verdict",
    "bootstrap_interval",
    "decide",
    "evaluate_version",
    "find_champion",
    "footprint",
    "paired_difference_interval",
    "score_classification",
]
