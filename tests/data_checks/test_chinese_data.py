"""Chinese data through the checks: encodings refused with file:line, unknown tokens counted
per split, CJK characters counted as tokens, full-width punctuation and emoji accepted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conveyor.chat import read_chat_split
from conveyor.recipe import Recipe, load_recipe
from conveyor.splits import DataError, read_split
from data_checks import Status, validate_recipe
from data_checks.stats import approximate_tokens
from data_checks.text.tokens import token_counter
from testbed.paths import CROSSWOZ_DIR, DATA_DIR, RECIPES_DIR

pytestmark = pytest.mark.unit

SIB = DATA_DIR / "sib200_zho_Hans"
SPLITS = ("train", "validation", "test")


def _sib_recipe(tmp_path: Path, overrides: tuple[str, ...] = ()) -> Recipe:
    raw = yaml.safe_load((RECIPES_DIR / "sib200-zh-minilm.yaml").read_text())
    for name in SPLITS:
        raw["data"][name] = str(shutil.copy(SIB / f"{name}.jsonl", tmp_path / f"{name}.jsonl"))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    return load_recipe(tmp_path / "recipe.yaml", list(overrides))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _gbk(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def test_a_gbk_file_is_refused_with_file_line_and_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes("".join(x for x in _lines(SIB / "train.jsonl") if _gbk(x)).encode("gbk"))
    with pytest.raises(DataError) as refused:
        read_split(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:1: not UTF-8") and "decodes as GBK" in message
    assert "mixes encodings" not in message


def test_one_gbk_line_in_a_utf8_file_is_named_as_mixed_encodings(tmp_path: Path) -> None:
    lines = [x for x in _lines(CROSSWOZ_DIR / "validation.jsonl") if _gbk(x)]
    path = tmp_path / "validation.jsonl"
    path.write_bytes(b"".join(x.encode("gbk" if n == 7 else "utf-8") for n, x in enumerate(lines)))
    with pytest.raises(DataError) as chat:
        read_chat_split(path)
    assert f"{path}:8: not UTF-8" in str(chat.value)
    assert "decodes as GBK; earlier lines are UTF-8: the file mixes encodings" in str(chat.value)
    with pytest.raises(DataError) as text:  # the pyarrow reader falls back to the exact scan
        read_split(path)
    assert str(text.value) == str(chat.value)


def test_a_gbk_csv_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    rows = ["text,label\n", "hello,a\n", "你好，世界,b\n"]
    path.write_bytes(rows[0].encode() + rows[1].encode() + rows[2].encode("gbk"))
    with pytest.raises(DataError) as refused:
        read_split(path)
    assert f"{path}:3: not UTF-8" in str(refused.value) and "GBK" in str(refused.value)


def test_full_width_punctuation_and_emoji_pass_the_checks(tmp_path: Path) -> None:
    recipe = _sib_recipe(tmp_path)
    frame = read_split(recipe.data.train)
    frame["text"] = frame["text"] + "！？（）「」～😊🎉"
    frame.to_json(recipe.data.train, orient="records", lines=True, force_ascii=False)
    report = validate_recipe(recipe)
    assert report.status is Status.PASSED, [c.line() for c in report.failures]


def test_an_english_vocabulary_turns_chinese_into_unknown_tokens_and_fails_with_the_number(
    tmp_path: Path,
) -> None:
    recipe = _sib_recipe(tmp_path, ("checks.max_unknown_token_share=0.05",))
    report = validate_recipe(recipe)
    failed = {c.split: c for c in report.failures if c.name == "unknown_tokens"}
    assert set(failed) == {"train", "validation", "test"}
    assert (
        "17,866 of 29,770 tokens (60.01%) are the tokenizer's unknown token"
        in failed["train"].summary
    )
    assert failed["train"].details["share"] == pytest.approx(17866 / 29770)


def test_english_data_has_no_unknown_tokens_under_the_same_tokenizer() -> None:
    texts = pd.read_json(DATA_DIR / "clinc150" / "validation.jsonl", lines=True)["text"]
    tally = token_counter("minilm").count(texts)
    assert tally.unknown == 0 and tally.lengths.sum() > 10_000


def test_without_a_tokenizer_a_cjk_character_counts_one_token() -> None:
    assert approximate_tokens("人均消费是131元。") == 7 + 1  # 7 wide characters, "131" 1 token
    assert approximate_tokens("book a flight") == 4  # 13 characters, 4 to a token
    approximate = token_counter("tiny-gpt2").count(pd.Series(["你好，世界", "hi"]))
    assert approximate.lengths.tolist() == [5 + 2, 1 + 2] and approximate.unknown is None


def _crosswoz_rows() -> list[dict[str, Any]]:
    return [json.loads(x) for x in _lines(CROSSWOZ_DIR / "validation.jsonl")]


def test_the_shipped_chinese_chat_data_passes_its_recipes_checks() -> None:
    recipe = load_recipe(RECIPES_DIR / "crosswoz-smollm2.yaml")
    report = validate_recipe(recipe)
    assert report.status is Status.PASSED, [c.line() for c in report.failures]
    assert len(_crosswoz_rows()) == report.splits["validation"]["rows"] == 201
    unknown = {c.split: c.details for c in report.checks if c.name == "unknown_tokens"}
    assert set(unknown) == {"train", "validation", "test"}  # SmolLM2's bytes read every text
    assert all(d["unknown"] == 0 and d["tokens"] > 30_000 for d in unknown.values())
