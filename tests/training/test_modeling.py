"""Bases that cannot work fail at once, with one line that says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import LabelMap
from training.errors import BaseModelError, LabelMismatchError
from training.modeling import build_classifier, resolve_base, train_bpe_tokenizer

pytestmark = pytest.mark.unit

FOUR = LabelMap(("a", "b", "c", "d"))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="no such folder"):
        resolve_base(str(tmp_path / "nope"))


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(BaseModelError, match=r"not a model folder \(no config.json\)"):
        build_classifier(str(tmp_path), FOUR, {})


def test_folder_with_a_broken_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BaseModelError, match="cannot read its config") as caught:
        build_classifier(str(tmp_path), FOUR, {})
    assert "\n" not in str(caught.value)


def test_folder_without_weights(tmp_path: Path, tiny_bert: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_bert / "config.json").read_text())
    with pytest.raises(BaseModelError, match="cannot load its weights"):
        build_classifier(str(tmp_path), FOUR, {})


def test_head_for_another_label_count(tmp_path: Path, tiny_bert: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    model.save_pretrained(tmp_path)
    with pytest.raises(LabelMismatchError, match="head for 3 labels but the train split has 4"):
        build_classifier(str(tmp_path), FOUR, {})


def test_head_for_other_label_names(tmp_path: Path, tiny_bert: Path) -> None:
    config = json.loads((tiny_bert / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    config["id2label"] = {str(i): name for i, name in enumerate("wxyz")}
    config["label2id"] = {name: i for i, name in enumerate("wxyz")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LabelMismatchError, match="trained on other labels"):
        build_classifier(str(tmp_path), FOUR, {})


def test_num_labels_override_that_disagrees_with_the_data(tiny_bert: Path) -> None:
    with pytest.raises(LabelMismatchError, match="model.config.num_labels is 7 but"):
        build_classifier(str(tiny_bert), FOUR, {"num_labels": 7})


def test_a_fresh_head_gets_the_data_labels(tiny_bert: Path) -> None:
    model = build_classifier(str(tiny_bert), FOUR, {"hidden_dropout_prob": 0.0})
    assert model.config.num_labels == 4
    assert model.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert model.config.hidden_dropout_prob == 0.0


def test_bpe_tokenizer_round_trips() -> None:
    tokenizer = train_bpe_tokenizer(["to be or not to be"] * 20, vocab_size=300)
    ids = tokenizer("to be")["input_ids"]
    assert tokenizer.decode(ids) == "to be"
    assert tokenizer.eos_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id
