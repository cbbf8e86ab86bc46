"""Tiny random decoders of several architectures written as GGUF files with ``gguf``'s writer,
laid out as llama.cpp's own converter lays them out, for the GGUF-base tests.

Each file holds float32 tensors (so a round trip through transformers is exact) and a small
tokenizer of the kind the architecture ships: a byte-level BPE with ChatML's special tokens for
Llama and Qwen2, SentencePiece with byte fallback and Gemma's special tokens for Gemma 3. The
weights and hyperparameters are laid out by the product's own :mod:`conversion.gguf_layout`
(what ``conveyor convert`` writes). The torch model the file was written from is returned
beside it: what the file must load back as.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conversion.gguf_layout import gguf_tensors, layout_for, write_hyperparameters

__all__ = ["TINY_ARCHITECTURES", "write_tiny_gguf"]

TINY_ARCHITECTURES = ("llama", "qwen2", "gemma3")
# Llama's file carries its own chat template; Qwen2's and Gemma 3's get their architecture's.
_FILE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
_GEMMA_PIECES = [
    "\u2581",
    *"abcdefghijklmnopqrstuvwxyz",
    *(f"\u2581{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    "\u2581the", "\u2581and", "er", "in", "on", "\u2581user", "\u2581model", "\u2581hello",
    "你", "好", "中", "文",
]  # fmt: skip


def _config(arch: str, vocab_size: int) -> Any:
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "initializer_range": 0.2,
    }
    if arch == "llama":
        return LlamaConfig(
            num_hidden_layers=2, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            pad_token_id=2, **common,
        )  # fmt: skip
    if arch == "qwen2":
        return Qwen2Config(
            num_hidden_layers=2, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
            pad_token_id=2, **common,
        )  # fmt: skip
    # 6 layers: Gemma 3's pattern of five sliding-window layers, then one global layer;
    # head_dim 256 as in every Gemma 3 (llama.cpp scales attention by 1/sqrt(head_dim), where
    # transformers reads query_pre_attn_scalar, 256 unless the file said otherwise)
    return Gemma3TextConfig(
        num_hidden_layers=6, head_dim=256, sliding_window=16, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, **common,
    )  # fmt: skip


def _model(arch: str, vocab_size: int, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = _config(arch, vocab_size)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    with torch.no_grad():  # Gemma initialises its norms at 0 (scale 1): make them matter
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.3)
    return model.eval()


def _bpe_tokenizer(writer: Any, pre: str, template: str | None) -> int:
    """A small byte-level BPE with ChatML's special tokens (ids 0-2), as llama.cpp stores one."""
    from gguf import TokenType
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = list(bytes_to_unicode().values())  # type: ignore[no-untyped-call]
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("\u0120", "t"), ("\u0120t", "he")]
    merges += [("u", "s"), ("us", "e"), ("use", "r"), ("\u0120", "w")]
    tokens = [*special, *alphabet, *("".join(pair) for pair in merges)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([TokenType.CONTROL] * 3 + [TokenType.NORMAL] * (len(tokens) - 3))
    writer.add_token_merges([" ".join(pair) for pair in merges])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(False)
    if template is not None:
        writer.add_chat_template(template)
    return len(tokens)


def _spm_tokens() -> list[str]:
    return [*_GEMMA_SPECIAL, *(f"<0x{b:02X}>" for b in range(256)), *_GEMMA_PIECES]


def _spm_tokenizer(writer: Any) -> int:
    """A small SentencePiece vocabulary with Gemma's special tokens and byte fallback."""
    from gguf import TokenType

    tokens = _spm_tokens()
    special = len(_GEMMA_SPECIAL)
    types = [TokenType.CONTROL] * special + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * (len(tokens) - len(types))
    scores = [0.0] * (special + 256) + [-float(i) for i in range(len(tokens) - special - 256)]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_pad_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_unk_token_id(3)
    writer.add_add_bos_token(True)
    return len(tokens)  # no chat template: the architecture's default applies


def write_tiny_gguf(path: Path, arch: str, seed: int = 0) -> Any:
    """Write a tiny random ``arch`` decoder to ``path`` (a GGUF); return its torch model."""
    from gguf import GGUFWriter

    writer = GGUFWriter(path, arch)
    writer.add_name(f"tiny-{arch}")
    if arch == "gemma3":
        vocab = _spm_tokenizer(writer)
    else:
        vocab = _bpe_tokenizer(
            writer,
            pre=arch if arch == "qwen2" else "smollm",
            template=_FILE_TEMPLATE if arch == "llama" else None,
        )
    model = _model(arch, vocab, seed)
    layout = layout_for(model)
    write_hyperparameters(writer, model.config, layout)
    for name, data in gguf_tensors(model, layout):
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model
