"""The CrossWOZ dialogue-act checker: hand-made cases, and its rates on the human references."""

from __future__ import annotations

import json

import pytest

from gates.plugins import checker_for
from gates.plugins.crosswoz_acts import Act, act_rates, check_acts, parse_acts
from testbed.paths import CROSSWOZ_DIR

pytestmark = pytest.mark.unit

PROMPT = (
    "根据以下对话动作，写一句中文客服回复：\n"
    "告知(餐馆.推荐菜=墨鱼红烧肉、干烧四鲜)；告知(餐馆.电话=010-82150018)；"
    "告知(餐馆.人均消费=131元)；无结果(景点)；不客气"
)


def test_acts_are_parsed_one_value_each_and_general_acts_carry_none() -> None:
    assert parse_acts(PROMPT) == (
        Act("告知", "餐馆.推荐菜", "墨鱼红烧肉"),
        Act("告知", "餐馆.推荐菜", "干烧四鲜"),
        Act("告知", "餐馆.电话", "010-82150018"),
        Act("告知", "餐馆.人均消费", "131元"),
        Act("无结果", "景点", ""),
    )


def test_a_faithful_reply_states_every_value() -> None:
    reply = "抱歉没有找到景点。电话是０１０-82150018，人均131块，推荐墨鱼红烧肉和干烧四鲜。"
    found = check_acts(parse_acts(PROMPT), reply)
    assert found.correct and not found.omitted and not found.added


def test_omitted_values_and_added_numbers_are_named() -> None:
    reply = "推荐您吃墨鱼红烧肉，人均131元，营业到22点，评分4.5分哦 😊"
    found = check_acts(parse_acts(PROMPT), reply)
    assert [a.label for a in found.omitted] == [
        "餐馆.推荐菜=干烧四鲜",
        "餐馆.电话=010-82150018",
        "无结果(景点)",
    ]
    assert found.added == ("22", "4.5")
    assert found.hallucinated and not found.correct


@pytest.mark.parametrize(
    ("prompt", "reply", "stated"),
    [
        ("告知(景点.评分=无)", "评分暂时没查到呢。", True),
        ("告知(酒店.酒店设施-租车=否)", "这家酒店不提供租车服务。", True),
        ("告知(酒店.酒店设施-酒店各处提供wifi=是)", "酒店里有WiFi。", True),
        ("告知(酒店.酒店设施-租车=否)", "好的。", False),
        ("告知(景点.门票=20元)", "门票是20块。", True),
        ("告知(景点.门票=20元)", "门票是30元。", False),
        ("告知(餐馆.电话=60150188 60150288)", "电话60150288。", True),
    ],
)
def test_values_the_data_spells_several_ways(prompt: str, reply: str, stated: bool) -> None:
    assert (not check_acts(parse_acts(prompt), reply).omitted) is stated


@pytest.mark.parametrize(
    "reply",
    [
        "告知(餐馆.推荐菜=墨鱼红烧肉、干烧四鲜)；告知(餐馆.电话=010-82150018)；告知(餐馆.人均消费=131元)",
        "好的，无结果（景点）。推荐菜＝墨鱼红烧肉 干烧四鲜，电话010-82150018，131元",  # full-width
    ],
)
def test_a_reply_that_writes_the_acts_back_is_an_echo_even_stating_every_value(reply: str) -> None:
    found = check_acts(parse_acts(PROMPT), reply)
    assert found.echoed and not found.correct


def test_brackets_in_a_real_sentence_are_not_an_echo() -> None:
    reply = "没有找到景点。推荐墨鱼红烧肉和干烧四鲜（招牌菜），电话010-82150018，人均131元。"
    found = check_acts(parse_acts(PROMPT), reply)
    assert not found.echoed and found.correct


def test_rates_and_the_recipe_name_selects_the_plugin() -> None:
    checker = checker_for("crosswoz-acts")
    assert checker is not None
    results = [
        checker.check(PROMPT, "没有景点；墨鱼红烧肉、干烧四鲜；010-82150018；131元"),
        checker.check(PROMPT, "推荐墨鱼红烧肉，电话88888888"),
    ]
    assert checker.rates(results) == {
        "omission_rate": 0.5,
        "hallucination_rate": 0.5,
        "echo_rate": 0.0,
        "fact_error_rate": 0.5,
        "slot_error_rate": pytest.approx((4 + 1) / 10),
    }
    assert act_rates([]).outputs == 0


def test_on_the_human_references_of_the_shipped_test_split_errors_are_rare() -> None:
    # References name the customer's own constraints at times ("没有5分的景点"): the checker
    # reports those numbers as added, as it should; measured 2.2% omitting, 1.8% adding.
    rows = [json.loads(line) for line in (CROSSWOZ_DIR / "test.jsonl").read_text().splitlines()]
    found = [
        check_acts(parse_acts(r["messages"][0]["content"]), r["messages"][1]["content"])
        for r in rows
    ]
    rates = act_rates(found)
    assert len(found) == 1484
    assert rates.omission_rate < 0.03
    assert rates.hallucination_rate < 0.03
    assert rates.echo_rate == 0.0  # no human reply writes act notation
    assert rates.error_rate > 0.0
