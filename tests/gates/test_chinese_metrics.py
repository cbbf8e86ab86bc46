"""The gates' metrics on Chinese, against values computed by hand.

Hypothesis 猫坐在垫子上 (6 characters), reference 猫在垫子上 (5): the longest common subsequence
is the whole reference. Each figure below is worked out in its test from the n-gram counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from conveyor.recipe.generation import Language
from gates.chat.metrics import CharTokenizer, score_texts

pytestmark = pytest.mark.unit

HYP, REF = "猫坐在垫子上", "猫在垫子上"


def test_rouge_l_over_characters_scores_a_chinese_pair_which_word_rouge_scores_zero() -> None:
    # LCS 5 characters: precision 5/6, recall 5/5, F1 = 2PR / (P + R) = 10/11.
    assert score_texts([HYP], [[REF]], Language.ZH).mean_rouge_l() == pytest.approx(10 / 11)
    # rouge-score's own tokenizer keeps [a-z0-9] only: the same pair scores nothing in English.
    assert score_texts([HYP], [[REF]], Language.EN).mean_rouge_l() == 0.0


def test_word_rouge_counts_only_the_digits_of_a_chinese_reply() -> None:
    reference = "好的，金水湾度假村人均消费131元。"
    wrong_name = reference.replace("金水湾度假村", "北京饭店")
    # rouge-score keeps "131" alone: a reply naming the wrong place scores full marks...
    assert score_texts([wrong_name], [[reference]], Language.EN).mean_rouge_l() == 1.0
    # ...over letters and digits: 好的 + 人均消费131元 in common (10) of 14 and 16, F1 = 20/30
    ours = score_texts([wrong_name], [[reference]], Language.ZH).mean_rouge_l()
    assert ours == pytest.approx(2 * 10 / (14 + 16))


def test_bleu_with_the_zh_tokenizer_counts_character_ngrams() -> None:
    # 1-grams 5/6, 2-grams 3/5 (坐在 and 猫坐 missing), 3-grams 2/4, 4-grams 1/3; the
    # hypothesis is longer than the reference, so no brevity penalty.
    expected = math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert score_texts([HYP], [[REF]], Language.ZH).bleu() == pytest.approx(expected)
    assert expected == pytest.approx(0.5373, abs=1e-4)
    # 13a sees each sentence as one word: no 1-gram in common, BLEU 0.
    assert score_texts([HYP], [[REF]], Language.EN).bleu() == 0.0


def test_chrf_averages_character_precision_and_recall_over_orders_then_weighs_recall() -> None:
    # orders 1..5 have n-grams on both sides (the reference has no 6-gram):
    # precision 5/6, 3/5, 2/4, 1/3, 0/2; recall 5/5, 3/4, 2/3, 1/2, 0/1
    precision = (5 / 6 + 3 / 5 + 2 / 4 + 1 / 3 + 0) / 5
    recall = (1 + 3 / 4 + 2 / 3 + 1 / 2 + 0) / 5
    expected = 5 * precision * recall / (4 * precision + recall)  # beta 2
    scores = score_texts([HYP], [[REF]], Language.ZH)
    assert scores.chrf() == pytest.approx(expected)
    assert scores.metric("chrf") == scores.chrf()


def test_full_width_punctuation_and_emoji_are_not_characters_of_rouge() -> None:
    characters = CharTokenizer().tokenize("好的，ＷｉＦｉ有！🎉")
    assert characters == ["好", "的", "w", "i", "f", "i", "有"]
    ours = score_texts(["好的，wifi有！🎉"], [["好的 WiFi 有。"]], Language.ZH)
    assert ours.mean_rouge_l() == pytest.approx(1.0)


def test_the_best_reference_counts_and_corpus_scores_sum_statistics() -> None:
    scores = score_texts([HYP, "好的"], [["不对", REF], ["好的。", "行"]], Language.ZH)
    assert scores.rouge_l.tolist() == pytest.approx([10 / 11, 1.0])
    alone = score_texts([HYP], [[REF]], Language.ZH)
    assert scores.chrf(np.asarray([0], dtype=np.int64)) == pytest.approx(alone.chrf())
    assert scores.bleu(np.asarray([0], dtype=np.int64)) == pytest.approx(alone.bleu())


def test_an_answer_cut_inside_a_character_drops_the_half_character(
    smollm2_tokenizer: Any,
) -> None:
    from gates.chat.model_io import answer_text

    ids = smollm2_tokenizer("好的，电话", add_special_tokens=False)["input_ids"]
    cut = next(
        n for n in range(1, len(ids)) if smollm2_tokenizer.decode(ids[:n]).endswith("\ufffd")
    )
    assert answer_text(smollm2_tokenizer, ids[:cut]) == smollm2_tokenizer.decode(ids[:cut])[:-1]
    assert "\ufffd" not in answer_text(smollm2_tokenizer, ids[:cut])
    assert answer_text(smollm2_tokenizer, ids) == "好的，电话"
