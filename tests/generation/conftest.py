"""The SmolLM2 tokenizer (from the shipped GGUF) and a tiny random Llama that uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.pretrained import load_gguf_tokenizer, smollm2_gguf
from tests.conftest import DATA_DIR

E2E_DIR = DATA_DIR / "e2e_nlg"


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tokenizer and chat template of SmolLM2-135M-Instruct, saved as a folder."""
    folder = tmp_path_factory.mktemp("smollm2-tokenizer")
    load_gguf_tokenizer(smollm2_gguf()).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))


def write_tiny_llama(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 Llama (random weights) with SmolLM2's tokenizer, as a model folder."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        initializer_range=0.2,  # logits with some range: a frozen random head can be steered
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer_dir)
