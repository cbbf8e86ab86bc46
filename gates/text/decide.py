"""``decide``: a text recipe's candidate (and its champion) against the recipe's gates.

A pure function of plain values: no model, no registry, no Prefect. Classifiers are held to
floors on accuracy and macro-F1 and to the drop of macro-F1 and of the worst class against
the champion (and, when the recipe sets ``max_headline_drop``, of the headline metric, with
its paired interval: the parity gate of a compressed version); causal language models to a
perplexity ceiling and its relative rise. The
checks every gate shares, and the reason, are :func:`gates.verdict.GateKind`'s.
"""

from __future__ import annotations

from conveyor.recipe.schema import GatesSection
from gates.verdict import (
    Evaluation,
    GateCheck,
    GateKind,
    at_least,
    at_most,
    perplexity_rise,
)

__all__ = ["decide"]


def _threshold_checks(candidate: Evaluation, gates: GatesSection) -> list[GateCheck]:
    m = candidate.metrics
    found: list[GateCheck] = []
    if gates.min_accuracy is not None and "accuracy" in m:
        found.append(at_least("min_accuracy", m["accuracy"], gates.min_accuracy, "accuracy"))
    if gates.min_macro_f1 is not None and "macro_f1" in m:
        found.append(at_least("min_macro_f1", m["macro_f1"], gates.min_macro_f1, "macro-F1"))
    if gates.min_in_scope_accuracy is not None and "in_scope_accuracy" in m:
        floor = gates.min_in_scope_accuracy
        what = "in-scope accuracy"
        found.append(at_least("min_in_scope_accuracy", m["in_scope_accuracy"], floor, what))
    if gates.max_perplexity is not None and "perplexity" in m:
        found.append(at_most("max_perplexity", m["perplexity"], gates.max_perplexity, "perplexity"))
    if gates.max_p99_latency_ms is not None and "p99_ms_batch1" in m:
        found.append(
            at_most(
                "max_p99_latency_ms",
                m["p99_ms_batch1"],
                gates.max_p99_latency_ms,
                "p99 latency (ms)",
            )
        )
    if gates.max_model_size_mb is not None and "model_size_mb" in m:
        found.append(
            at_most("max_model_size_mb", m["model_size_mb"], gates.max_model_size_mb, "size (MB)")
        )
    if candidate.unknown_labels:
        count = sum(candidate.unknown_labels.values())
        names = ", ".join(sorted(candidate.unknown_labels)[:5])
        detail = (
            f"{count} test examples have labels the model does not know ({names}); "
            "counted as errors"
        )
        found.append(GateCheck("known_test_labels", float(count), 0.0, "<=", "warn", detail))
    return found


def _classification_regressions(
    candidate: Evaluation, champion: Evaluation, gates: GatesSection
) -> list[GateCheck]:
    drop = champion.metrics["macro_f1"] - candidate.metrics["macro_f1"]
    found = [
        at_most(
            "max_macro_f1_drop",
            drop,
            gates.max_macro_f1_drop,
            f"macro-F1 drop vs {champion.version}",
        )
    ]
    shared = set(candidate.per_class_f1) & set(champion.per_class_f1)
    if shared:
        drops = {c: champion.per_class_f1[c] - candidate.per_class_f1[c] for c in shared}
        worst = max(drops, key=lambda c: drops[c])
        check = at_most(
            "max_class_f1_drop",
            drops[worst],
            gates.max_class_f1_drop,
            f"worst class F1 drop ('{worst}')",
        )
        found.append(check)
    return found


def _lm_regressions(
    candidate: Evaluation, champion: Evaluation, gates: GatesSection
) -> list[GateCheck]:
    ours, theirs = candidate.metrics["perplexity"], champion.metrics["perplexity"]
    return [perplexity_rise(ours, theirs, gates.max_perplexity_increase, champion.version)]


def _regressions(
    candidate: Evaluation, champion: Evaluation, gates: GatesSection
) -> list[GateCheck]:
    if candidate.task == "causal-lm":
        return _lm_regressions(candidate, champion, gates)
    return _classification_regressions(candidate, champion, gates)


def _headline(candidate: Evaluation, gates: GatesSection) -> str:
    return "perplexity" if candidate.task == "causal-lm" else gates.headline_metric


def _drop_ceiling(gates: GatesSection) -> float | None:
    return gates.max_headline_drop


decide = GateKind(
    _threshold_checks, _regressions, _headline, alone="first model", drop_ceiling=_drop_ceiling
)
"""``decide(candidate, champion, gates, gain=None) -> Verdict``: ``gain`` is the paired
interval of candidate minus champion."""
