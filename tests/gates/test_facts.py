"""The E2E fact checker: hand-made cases, and its rates on the human references."""

from __future__ import annotations

import json

import pytest

from gates.plugins import checker_for
from gates.plugins.e2e_facts import check_facts, fact_rates, parse_mr
from testbed.paths import E2E_DIR

pytestmark = pytest.mark.unit

MR = parse_mr(
    "Write one or two sentences describing this restaurant, using every fact given: "
    "name[The Mill], eatType[pub], food[English], priceRange[less than £20], "
    "customer rating[5 out of 5], area[riverside], familyFriendly[no], near[Raja Indian Cuisine]"
)


def test_the_mr_is_parsed_in_order() -> None:
    assert list(MR) == [
        "name",
        "eatType",
        "food",
        "priceRange",
        "customer rating",
        "area",
        "familyFriendly",
        "near",
    ]
    assert MR["customer rating"] == "5 out of 5" and MR["near"] == "Raja Indian Cuisine"


def test_a_faithful_paraphrase_states_every_fact() -> None:
    text = (
        "The Mill is a cheap, highly rated English pub by the river near Raja Indian Cuisine; "
        "it is not family-friendly."
    )
    found = check_facts(MR, text)
    assert found.correct, found


def test_omissions_are_named_per_slot() -> None:
    found = check_facts(MR, "The Mill is a pub near Raja Indian Cuisine.")
    assert found.omitted == ("food", "priceRange", "customer rating", "area", "familyFriendly")
    assert not found.hallucinated


def test_contradictions_and_additions_are_hallucinations() -> None:
    mr = parse_mr("name[Aromi], eatType[coffee shop], area[city centre], familyFriendly[yes]")
    text = (
        "Aromi is a family-friendly pub in the riverside area serving Italian food, "
        "near Burger King."
    )
    found = check_facts(mr, text)
    assert dict(found.contradicted) == {"eatType": "pub", "area": "riverside"}
    assert found.added == ("food", "near") and found.hallucinated


def test_masking_the_near_value_keeps_its_words_out_of_other_slots() -> None:
    mr = parse_mr("name[Wildwood], eatType[pub], near[Raja Indian Cuisine]")
    assert check_facts(mr, "Wildwood is a pub near Raja Indian Cuisine.").correct
    assert check_facts(mr, "Wildwood is a pub near the Raja Indian Cuisine.").correct
    assert check_facts(mr, "Wildwood, an Indian pub near Raja Indian Cuisine.").added == ("food",)


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("It is kid friendly.", "yes"),
        ("Families are welcome.", "yes"),
        ("It isn't very family friendly.", "no"),
        ("It is not a child friendly place.", "no"),
        ("They do not allow children.", "no"),
        ("An adults only venue.", "no"),
    ],
)
def test_family_friendliness_reads_negations(text: str, family: str) -> None:
    mr = {"familyFriendly": family}
    assert check_facts(mr, text).correct
    other = {"familyFriendly": "no" if family == "yes" else "yes"}
    assert check_facts(other, text).contradicted == (("familyFriendly", family),)


@pytest.mark.parametrize(
    ("rating", "text"),
    [
        ("1 out of 5", "It has a low customer rating."),
        ("low", "It is rated 1 out of 5."),
        ("3 out of 5", "Customers give it an average rating."),
        ("high", "A five star place."),
        ("low", "It does not have good reviews."),
    ],
)
def test_ratings_of_the_same_class_count_as_stated(rating: str, text: str) -> None:
    assert check_facts({"customer rating": rating}, text).correct


def test_price_and_rating_words_are_told_apart() -> None:
    mr = {"priceRange": "high", "customer rating": "average"}
    assert check_facts(mr, "It is expensive and has an average customer rating.").correct
    found = check_facts(mr, "It is inexpensive, with a high rating.")
    assert dict(found.contradicted) == {"priceRange": "low", "customer rating": "high"}


def test_rates_over_outputs() -> None:
    mr = {"name": "Aromi", "area": "riverside"}
    found = [
        check_facts(mr, "Aromi is by the river."),
        check_facts(mr, "Aromi."),
        check_facts(mr, "Aromi is in the city centre, near Burger King."),
        check_facts(mr, "Aromi is on the riverside."),
    ]
    rates = fact_rates(found)
    assert (rates.omission_rate, rates.hallucination_rate, rates.error_rate) == (0.25, 0.25, 0.5)
    assert rates.by_slot == {"area": 2, "near": 1}
    assert rates.slot_error_rate == pytest.approx(3 / 8)


def test_the_recipe_name_selects_the_plugin_which_reads_the_mr_from_the_prompt() -> None:
    checker = checker_for("e2e-facts")
    assert checker is not None and checker_for("exact-match") is None
    prompt = "Describe it: name[Aromi], area[riverside]"
    found = [checker.check(prompt, "Aromi is by the river."), checker.check(prompt, "Aromi.")]
    assert found == [check_facts(parse_mr(prompt), a) for a in ("Aromi is by the river.", "Aromi.")]
    assert checker.rates(found) == {
        "omission_rate": 0.5,
        "hallucination_rate": 0.0,
        "fact_error_rate": 0.5,
        "slot_error_rate": 0.25,
    }


def test_on_the_human_references_of_the_test_set_errors_are_rare() -> None:
    # The references are human texts, cleaned to match their MRs, yet ~9% of them still add a
    # fact (mostly a price) that their MR lacks: the checker reports it, as it should.
    rows = [json.loads(line) for line in (E2E_DIR / "test.jsonl").read_text().splitlines()]
    found = [
        check_facts(parse_mr(r["messages"][0]["content"]), r["messages"][1]["content"])
        for r in rows
    ]
    rates = fact_rates(found)
    assert rates.omission_rate < 0.03
    assert rates.hallucination_rate < 0.12
    assert rates.slot_error_rate < 0.03
