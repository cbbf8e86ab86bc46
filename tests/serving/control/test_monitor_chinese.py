"""The drift monitor on Chinese traffic: lengths in characters (not UTF-8 bytes), the training
profile of SIB-200 zh against live texts tokenized by the served model's real tokenizer."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from data_checks import data_profile
from data_checks.stats import length_histogram
from serving.control.monitor import MonitorThresholds, check_drift
from serving.worker.profile import InputProfile, profile_of
from testbed.paths import DATA_DIR
from testbed.tiny_models import minilm_tokenizer

pytestmark = pytest.mark.unit

SIB = DATA_DIR / "sib200_zho_Hans"
THRESHOLDS = MonitorThresholds(min_requests=40)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return minilm_tokenizer()


def _split(name: str) -> pd.DataFrame:
    return pd.read_json(SIB / f"{name}.jsonl", lines=True)


def _live(tokenizer: Any, texts: list[str], labels: list[str]) -> InputProfile:
    ids = [tokenizer(t)["input_ids"] for t in texts]
    answers = [{"label": label, "score": 0.9} for label in labels]
    return profile_of(texts, answers, ids, tokenizer.unk_token_id)


def _figures(report: Any) -> dict[str, tuple[float | None, bool]]:
    return {f.name: (f.value, f.breached) for f in report.figures}


def test_live_lengths_are_characters_as_in_the_training_profile(tokenizer: Any) -> None:
    texts = _split("test")["text"].tolist()
    profile = _live(tokenizer, texts, ["x"] * len(texts))
    assert profile.length_counts == length_histogram(pd.Series(texts).str.len())
    in_bytes = length_histogram(pd.Series([len(t.encode()) for t in texts]))
    assert profile.length_counts != in_bytes  # a Chinese character is 3 bytes


def test_chinese_traffic_like_the_training_data_drifts_only_in_unknown_tokens(
    tokenizer: Any,
) -> None:
    reference = data_profile(_split("train"), "text", "label")
    test = _split("test")
    report = check_drift(
        reference, _live(tokenizer, test["text"].tolist(), test["label"].tolist()), THRESHOLDS
    )
    figures = _figures(report)
    assert figures["length_psi"][0] is not None and figures["length_psi"][0] < 0.1
    assert not figures["label_psi"][1] and not figures["length_psi"][1]
    # MiniLM's English vocabulary reads 60% of these tokens as [UNK]: the monitor says so.
    unknown, breached = figures["unknown_token_rate"]
    assert breached and unknown == pytest.approx(0.60, abs=0.02)


def test_longer_chinese_texts_are_length_drift(tokenizer: Any) -> None:
    reference = data_profile(_split("train"), "text", "label")
    test = _split("test")
    texts = [a + b + c for a, b, c in zip(*[iter(test["text"].tolist() * 3)] * 3, strict=True)]
    report = check_drift(reference, _live(tokenizer, texts, ["x"] * len(texts)), THRESHOLDS)
    assert _figures(report)["length_psi"][1], report.reason()
