"""Training data: the text and chat formats encoded to token ids, and their batches.

``text`` reads a text column (and labels) and encodes it for a classifier or a language
model; ``chat`` renders conversations with the tokenizer's chat template, with a label per
token (assistant turns only). Both give :class:`Encoded`, which ``batches`` orders and pads.
"""

from training.data.batches import Encoded, collate, epoch_batches
from training.data.chat import ChatEncoded, encode_chat, read_chat
from training.data.text import LabelMap, encode_causal_lm, encode_classification, read_texts

__all__ = [
    "ChatEncoded",
    "Encoded",
    "LabelMap",
    "collate",
    "encode_causal_lm",
    "encode_chat",
    "encode_classification",
    "epoch_batches",
    "read_chat",
    "read_texts",
]
