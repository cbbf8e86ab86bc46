"""Tiny versions registered for the served deployment: real 2-layer BERT classifiers over four
CLINC150 intents (some built to fail real traffic), a tiny Llama as a language-model version,
and a way to change a folder under a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.recipe.schema import Recipe
from conveyor.registry import Registry
from conveyor.settings import Settings
from testbed.clinc import clinc_texts
from testbed.paths import E2E_DIR

LABELS = ("timer", "transfer", "translate", "definition")
LONG_TEXT = (
    "could you please set a timer for twenty five minutes so that I remember to take the "
    "bread out of the oven before it burns again like last time"
)
DEPLOYMENT = "tiny-serve"
SMOKE_SAFE_VOCAB = 25_400  # the smoke set's largest token id is 25,309 (MiniLM's vocabulary)


def make_version(
    registry: Registry,
    settings: Settings,
    tokenizer: Any,
    seed: int,
    *,
    positions: int = 64,
    serving: dict[str, Any] | None = None,
    hidden: int = 32,
    vocab: int | None = None,
) -> str:
    """Register a 2-layer hidden-32 BERT classifier. ``vocab`` below the tokenizer's makes a
    model that passes its smoke set (:data:`SMOKE_SAFE_VOCAB`) yet fails every text with a
    rarer token (:func:`texts_beyond`): a real model fault on real traffic."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab or tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=positions,
    )
    config.num_labels = len(LABELS)
    return register_classifier(
        registry,
        settings,
        BertForSequenceClassification(config),
        tokenizer,
        base="tiny",
        serving={"rollback": {"min_requests": 10, "max_error_rate": 0.05}, **(serving or {})},
        lineage={"seed": seed},
    )


def register_llm(
    registry: Registry,
    settings: Settings,
    folder: Path,
    *,
    max_new_tokens: int = 400,
    serving: dict[str, Any] | None = None,
    deployment: str = DEPLOYMENT,
    data: dict[str, Any] | None = None,
    gates: dict[str, Any] | None = None,
    max_length: int = 512,
    base: str | None = None,
) -> str:
    """The causal LM in ``folder`` (a tiny Llama, or a real base) as a version of
    ``deployment``, promoted. ``data`` and ``gates`` are recipe sections, for a version whose
    gates are run later (its chat splits, its generation gate); ``base`` is the recipe's
    ``model.base`` when it is not the folder (a pinned GGUF the folder was converted from)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conveyor.model_folder import register_model_folder, write_model_folder
    from serving.control.rollout import promote

    placeholder_splits = {"train": "t.jsonl", "validation": "v.jsonl", "test": "t.jsonl"}
    recipe = Recipe.model_validate(
        {
            "name": deployment,
            "task": "causal-lm",
            "data": {**(data or placeholder_splits), "label_field": None},
            "model": {"base": base or str(folder), "max_length": max_length},
            "serving": {"max_new_tokens": max_new_tokens, **(serving or {})},
            **({"gates": gates} if gates else {}),
        }
    )
    written = write_model_folder(
        settings.models_dir,
        deployment,
        AutoModelForCausalLM.from_pretrained(str(folder)),
        AutoTokenizer.from_pretrained(str(folder)),
        label_names=None,
        metrics={},
        recipe=recipe.model_dump(mode="json"),
        lineage={"seed": 0},
    )
    record = register_model_folder(
        registry, written, recipe=recipe, metrics={}, data_fingerprint=None, reason="test"
    )
    promote(registry, record.version, canary_percent=0, timeout=5)
    return record.version


def register_e2e_llm(
    registry: Registry, settings: Settings, folder: Path, **generation: float
) -> str:
    """The causal LM in ``folder`` as a chat version over the shipped E2E splits whose
    generation gate is cheap (six prompts, eight new tokens); ``generation`` adds to that gate
    (e.g. ``min_rouge_l=0.99``, which a random tiny model cannot reach)."""
    return register_llm(
        registry,
        settings,
        folder,
        max_new_tokens=16,
        data={
            "train": str(E2E_DIR / "train.jsonl"),
            "validation": str(E2E_DIR / "validation.jsonl"),
            "test": str(E2E_DIR / "test.jsonl"),
            "format": "chat",
        },
        gates={
            "generation": {
                "max_prompts": 6,
                "max_new_tokens": 8,
                "batch_size": 3,
                "task_check": "e2e-facts",
                **generation,
            }
        },
        max_length=192,
    )


def texts_beyond(tokenizer: Any, vocab: int = SMOKE_SAFE_VOCAB) -> list[str]:
    """CLINC150 test texts holding a token id a ``vocab``-sized model cannot embed."""
    texts = clinc_texts()
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [text for text, row in zip(texts, ids, strict=True) if row and max(row) >= vocab]


def register_classifier(
    registry: Registry,
    settings: Settings,
    model: Any,
    tokenizer: Any,
    *,
    base: str,
    serving: dict[str, Any],
    lineage: dict[str, Any],
) -> str:
    """Write ``model`` as a DEPLOYMENT model folder over LABELS and register it; its version."""
    from conveyor.model_folder import register_model_folder, write_model_folder
    from conveyor.registry import VersionStatus

    raw = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {"train": "t.jsonl", "validation": "v.jsonl", "test": "t.jsonl"},
        "model": {"base": base, "max_length": 48},
        "serving": serving,
    }
    recipe = Recipe.model_validate(raw)
    folder = write_model_folder(
        settings.models_dir,
        DEPLOYMENT,
        model,
        tokenizer,
        label_names=LABELS,
        metrics={},
        recipe=recipe.model_dump(mode="json"),
        lineage=lineage,
    )
    record = register_model_folder(
        registry,
        folder,
        recipe=recipe,
        metrics={},
        data_fingerprint=None,
        reason="test fixture",
        status=VersionStatus.REGISTERED,
    )
    return record.version


def zero_in_place(path: Path) -> None:
    """Overwrite every byte after the safetensors header with zeros, in place (same inode,
    same size): what a served model must not see of its files once it has loaded them."""
    with path.open("r+b") as handle:
        header = 8 + int.from_bytes(handle.read(8), "little")
        size = path.stat().st_size
        handle.seek(header)
        handle.write(bytes(size - header))
