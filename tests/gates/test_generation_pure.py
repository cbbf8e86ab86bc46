"""Generative gates as plain values: metrics, prompt groups, the golden suite, the decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conveyor.chat import Conversation, Message
from conveyor.recipe.schema import GatesSection
from gates.bootstrap import Interval
from gates.chat.decide import GenerationEvaluation, decide_generation
from gates.chat.golden import GoldenError, check_golden, load_golden
from gates.chat.metrics import score_texts
from gates.chat.side_by_side import most_different, side_by_side_markdown
from gates.chat.test_set import group_by_prompt, sample_prompts

pytestmark = pytest.mark.unit

OUTPUTS = ["the cat sat on the mat", "a dog ran in the park today", "hello there"]
REFERENCES = [
    ["the cat sat on the mat", "a cat was on the mat"],
    ["the dog ran in the park", "a dog was running in a park today", "dogs run"],
    ["general kenobi"],
]


def test_bleu_is_sacrebleus_multi_reference_corpus_bleu_over_any_subset() -> None:
    import sacrebleu

    scores = score_texts(OUTPUTS, REFERENCES)
    streams = [[refs[i] if i < len(refs) else None for refs in REFERENCES] for i in range(3)]
    assert scores.bleu() == pytest.approx(sacrebleu.corpus_bleu(OUTPUTS, streams).score / 100)
    rows = np.asarray([0, 0, 2], dtype=np.int64)
    picked = [OUTPUTS[i] for i in rows]
    sub_streams = [[s[i] for i in rows] for s in streams]
    expected = sacrebleu.corpus_bleu(picked, sub_streams).score / 100
    assert scores.bleu(rows) == pytest.approx(expected)


def test_rouge_l_is_the_best_reference_per_prompt() -> None:
    from rouge_score import rouge_scorer

    scores = score_texts(OUTPUTS, REFERENCES)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert scores.rouge_l[0] == pytest.approx(1.0)
    best = max(scorer.score(r, OUTPUTS[1])["rougeL"].fmeasure for r in REFERENCES[1])
    assert scores.rouge_l[1] == pytest.approx(best) and scores.rouge_l[2] == 0.0
    assert scores.mean_rouge_l() == pytest.approx(scores.rouge_l.mean())
    with pytest.raises(ValueError, match="at least one reference"):
        score_texts(["x"], [[]])


def _chat(prompt: str, answer: str) -> Conversation:
    return Conversation((Message("user", prompt), Message("assistant", answer)), 1)


def test_references_are_grouped_by_prompt_and_the_sample_is_fixed_by_its_seed() -> None:
    rows = [_chat("A", "a1"), _chat("b", "b1"), _chat(" a ", "a2"), _chat("C", "c1")]
    groups = group_by_prompt(rows)
    assert [(g.last_user_text, g.references) for g in groups] == [
        ("A", ("a1", "a2")),
        ("b", ("b1",)),
        ("C", ("c1",)),
    ]
    many = group_by_prompt([_chat(f"p{i}", "x") for i in range(50)])
    first = sample_prompts(many, 10, seed=3)
    assert len(first) == 10 and first == sample_prompts(list(reversed(many)), 10, seed=3)
    assert first != sample_prompts(many, 10, seed=4)
    assert sample_prompts(many, 100, seed=3) == many


def test_golden_suite_passes_only_when_every_expectation_holds(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text(
        "- name: mill\n"
        "  prompt: 'name[The Mill], eatType[pub]'\n"
        "  must_include: [The Mill, pub]\n"
        "  must_not_include: Mumbai\n"
        "- messages: [{role: user, content: 'Say a number'}]\n"
        "  regex: '\\d+'\n"
    )
    cases = load_golden(path)
    assert [c.name for c in cases] == ["mill", "case 2"]
    results = check_golden(cases, ["The Mill is a PUB.", "forty-two"])
    assert [r.passed for r in results] == [True, False]
    assert results[1].failures == ["does not match /\\d+/"]
    results = check_golden(cases, ["The Mill, in Mumbai", "42"])
    assert results[0].failures == ["missing 'pub'", "contains 'Mumbai'"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "non-empty YAML list"),
        ("- {prompt: x}", "case 1: checks nothing"),
        ("- {prompt: x, must_include: [1]}", "case 1.must_include: expected a string"),
        ("- {prompt: x, regex: '('}", "case 1.regex: not a regular expression"),
        ("- {promt: x, regex: a}", r"unknown key\(s\) promt"),
        ("- {regex: a}", "needs prompt"),
    ],
)
def test_a_bad_golden_suite_names_the_file_and_case(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text(text)
    with pytest.raises(GoldenError, match=message) as caught:
        load_golden(path)
    assert str(path) in str(caught.value)


def test_side_by_side_picks_the_largest_differences_and_skips_equal_answers() -> None:
    rows = most_different(
        ["p1", "p2", "p3", "p4"],
        [["r1"], ["r2"], ["r3"], ["r4"]],
        ["same", "bad", "good", "meh"],
        ["same", "good", "bad", "meh!"],
        [0.5, 0.1, 0.9, 0.5],
        [0.5, 0.8, 0.2, 0.55],
        count=2,
    )
    assert [(r.prompt, round(r.difference, 2)) for r in rows] == [("p2", 0.7), ("p3", -0.7)]
    table = side_by_side_markdown(rows, "base", "v2")
    assert "| p2 | r2 | bad (0.10) | good (0.80) | +0.70 |" in table


def _gates(**generation: object) -> GatesSection:
    return GatesSection(generation=generation)  # type: ignore[arg-type]


CANDIDATE = GenerationEvaluation(
    "e2e:v1",
    {"bleu": 0.5, "rouge_l": 0.6, "omission_rate": 0.08, "hallucination_rate": 0.02,
     "perplexity": 3.0},
    golden_failures=(),
)  # fmt: skip
BASE = GenerationEvaluation(
    "base", {"bleu": 0.06, "rouge_l": 0.25, "omission_rate": 0.7, "perplexity": 12.0}
)


def test_thresholds_each_name_value_and_limit() -> None:
    gates = _gates(
        min_bleu=0.55, min_rouge_l=0.6, max_omission_rate=0.1, max_hallucination_rate=0.1
    )
    verdict = decide_generation(CANDIDATE, None, gates)
    outcomes = {c.name: c.outcome for c in verdict.checks}
    assert outcomes == {
        "min_bleu": "fail",
        "min_rouge_l": "pass",
        "max_omission_rate": "pass",
        "max_hallucination_rate": "pass",
        "golden_suite": "pass",
    }
    assert not verdict.passed and verdict.reason == "fail: BLEU 0.5000 < 0.5500"


def test_the_candidate_must_not_fall_below_its_champion_the_base_model() -> None:
    verdict = decide_generation(CANDIDATE, BASE, _gates())
    assert verdict.passed and verdict.champion == "base"
    assert {c.name for c in verdict.checks} == {
        "golden_suite",
        "max_headline_drop",
        "max_perplexity_increase",
    }
    worse = GenerationEvaluation("e2e:v2", {"rouge_l": 0.2, "perplexity": 13.0})
    verdict = decide_generation(worse, BASE, _gates())
    failed = {c.name for c in verdict.checks if c.failed}
    assert failed == {"max_headline_drop", "max_perplexity_increase"}
    assert "rouge_l drop vs base" in verdict.reason


def test_the_parity_gate_bounds_each_fact_error_rate_against_the_parent() -> None:
    parent = GenerationEvaluation("e2e:v1", {"rouge_l": 0.60, "omission_rate": 0.10,
                                             "hallucination_rate": 0.02})  # fmt: skip
    quantized = GenerationEvaluation("e2e:v2", {"rouge_l": 0.595, "omission_rate": 0.13,
                                                "hallucination_rate": 0.03})  # fmt: skip
    parity = _gates(max_headline_drop=0.01, max_fact_error_rise=0.02)
    verdict = decide_generation(quantized, parent, parity)
    outcomes = {c.name: c.outcome for c in verdict.checks}
    assert outcomes == {
        "max_headline_drop": "pass",  # 0.005 <= 0.01
        "max_fact_error_rise:omission_rate": "fail",  # +0.03 > 0.02
        "max_fact_error_rise:hallucination_rate": "pass",  # +0.01
    }
    assert not verdict.passed and "omitting a fact" in verdict.reason
    unset = decide_generation(quantized, parent, _gates(max_headline_drop=0.01))
    assert unset.passed, "without the parity setting, fact rates are not compared"


def test_significance_uses_the_paired_interval() -> None:
    gates = GatesSection(require_significant_gain=True)
    above = Interval(0.3, 0.25, 0.35, 0.95, 1000)
    straddles = Interval(0.01, -0.02, 0.04, 0.95, 1000)
    assert decide_generation(CANDIDATE, BASE, gates, above).passed
    verdict = decide_generation(CANDIDATE, BASE, gates, straddles)
    assert not verdict.passed and "includes 0" in verdict.reason
    assert verdict.gain == straddles


def test_a_failed_golden_case_fails_the_whole_suite() -> None:
    broken = GenerationEvaluation(
        "e2e:v3", {"rouge_l": 0.7}, golden_failures=("mill: missing 'pub'",)
    )
    verdict = decide_generation(broken, None, _gates())
    assert (
        not verdict.passed
        and "golden suite: 1 case(s) failed: mill: missing 'pub'" in verdict.reason
    )


def test_unloadable_candidate_and_champion() -> None:
    dead = GenerationEvaluation("e2e:v4", error="no adapter_config.json")
    verdict = decide_generation(dead, BASE, _gates())
    assert not verdict.passed and verdict.checks[0].name == "artifact_loads"
    verdict = decide_generation(CANDIDATE, GenerationEvaluation("base", error="gone"), _gates())
    assert verdict.passed and "could not be evaluated" in verdict.reason


@pytest.mark.parametrize("name", ["e2e-smollm2", "crosswoz-smollm2"])
def test_the_shipped_generative_recipes_and_their_golden_suites_load(name: str) -> None:
    from conveyor.recipe import load_recipe
    from testbed.paths import RECIPES_DIR

    recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
    assert recipe.data.format == "chat" and recipe.training.lora.enabled
    golden = recipe.gates.generation.golden
    assert golden is not None and golden.is_absolute()
    cases = load_golden(golden)
    assert len(cases) >= 4 and all(c.messages[0].role == "user" for c in cases)


def test_the_report_shows_checks_metrics_golden_and_side_by_side() -> None:
    from gates.chat.evaluate import GenerationJudgement
    from gates.chat.golden import GoldenResult
    from gates.chat.report import generation_markdown, generation_payload
    from gates.chat.side_by_side import SideBySide

    gain = Interval(0.3, 0.25, 0.35, 0.95, 1000)
    verdict = decide_generation(CANDIDATE, BASE, GatesSection(require_significant_gain=True), gain)
    rows = [
        SideBySide("name[Aromi]", "Aromi is a pub.", "In Mumbai...", "Aromi is a pub.", 0.1, 1.0)
    ]
    judgement = GenerationJudgement(verdict, CANDIDATE, BASE, gain, rows)
    golden = [GoldenResult("mill", "The Mill is a pub."), GoldenResult("x", "no", ["missing 'y'"])]
    text = generation_markdown(judgement, test_path="test.jsonl", prompts=400, golden=golden)
    assert text.startswith("# Gate verdict: e2e:v1\n\n**PASSED**")
    assert "| ROUGE-L | 0.6000 | 0.2500 | +0.3500 |" in text
    assert "| x | **fail**: missing 'y' | no |" in text
    assert (
        "| name[Aromi] | Aromi is a pub. | In Mumbai... (0.10) | Aromi is a pub. (1.00) | +0.90 |"
        in text
    )
    assert "gain over the champion, paired bootstrap: +0.3000 [+0.2500, +0.3500]" in text
    payload = generation_payload(judgement)
    assert payload["passed"] and payload["side_by_side"][0]["difference"] == pytest.approx(0.9)
    assert payload["champion_metrics"]["rouge_l"] == 0.25
