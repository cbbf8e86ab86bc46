# mypy: disable-error-code="no-untyped-call, union-attr, operator"
# (transformers' model classes are untyped: this module is glue around them)
"""A BERT-shaped encoder whose sentence vector is the mean of its token states (as E5 was
trained), as a transformers model type of conveyor's own, ``conveyor-mean-pool-bert``.

:func:`register_mean_pool` tells transformers' Auto classes about it; every loader of model
folders calls it first (training, the model-folder loader), so a folder of this type loads
like any other with ``AutoModelForSequenceClassification``. ``freeze_word_embeddings`` in
the config (a recipe's ``model.config``) keeps the word embedding out of training: with a
250k-row vocabulary it dominates the step time and the optimizer state.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = [
    "MODEL_TYPE",
    "MeanPoolBertConfig",
    "MeanPoolBertForSequenceClassification",
    "MeanPoolBertModel",
    "freeze_configured",
    "mean_pool",
    "register_mean_pool",
]

MODEL_TYPE = "conveyor-mean-pool-bert"


class MeanPoolBertConfig(BertConfig):
    model_type = MODEL_TYPE

    def __init__(self, freeze_word_embeddings: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.freeze_word_embeddings = freeze_word_embeddings


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of each row's token states over its attended tokens (specials included)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class _MeanPoolBase(BertPreTrainedModel):
    config_class = MeanPoolBertConfig
    base_model_prefix = "bert"

    def _encode(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> torch.Tensor:
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return mean_pool(out.last_hidden_state, attention_mask)

    def _freeze(self, config: MeanPoolBertConfig) -> None:
        freeze_configured(self)


class MeanPoolBertModel(_MeanPoolBase):
    """The encoder alone: ``model(**batch)`` is the mean-pooled sentence vectors."""

    def __init__(self, config: MeanPoolBertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.post_init()
        self._freeze(config)

    def forward(
        self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
        **_: Any,
    ) -> torch.Tensor:  # fmt: skip
        return self._encode(input_ids, attention_mask, token_type_ids)


class MeanPoolBertForSequenceClassification(_MeanPoolBase):
    """A linear head on the mean-pooled vector; cross-entropy loss when labels are given."""

    def __init__(self, config: MeanPoolBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout
        self.dropout = torch.nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = torch.nn.Linear(config.hidden_size, int(config.num_labels or 2))
        self.post_init()
        self._freeze(config)

    def forward(
        self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
        labels: Any = None, **_: Any,
    ) -> SequenceClassifierOutput:  # fmt: skip
        pooled = self._encode(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def freeze_configured(model: Any) -> None:
    """Keep the word embedding out of training when the config says so. Call it after
    ``from_pretrained`` too: loading the weights makes every parameter trainable again."""
    if getattr(model.config, "freeze_word_embeddings", False):
        model.get_input_embeddings().weight.requires_grad_(False)


def register_mean_pool() -> None:
    """Make ``conveyor-mean-pool-bert`` folders loadable by the Auto classes (idempotent)."""
    AutoConfig.register(MODEL_TYPE, MeanPoolBertConfig, exist_ok=True)
    AutoModel.register(MeanPoolBertConfig, MeanPoolBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(
        MeanPoolBertConfig, MeanPoolBertForSequenceClassification, exist_ok=True
    )
