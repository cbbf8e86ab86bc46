"""Evaluation batches of a language model stay within a logits budget; classifiers keep 128."""

from __future__ import annotations

import pytest

from training.loop import EVAL_BATCH_SIZE, EVAL_LOGITS_BYTES, eval_batch_size

pytestmark = pytest.mark.unit


def test_a_large_vocabulary_at_a_long_context_evaluates_fewer_rows() -> None:
    # SmolLM2's 49,152 logits per token: CrossWOZ at 320 tokens, E2E at 192
    assert eval_batch_size(320, 49152) == 17
    assert eval_batch_size(192, 49152) == 28
    assert 17 * 320 * 49152 * 4 <= EVAL_LOGITS_BYTES < 18 * 320 * 49152 * 4


def test_classifiers_and_small_vocabularies_keep_the_default() -> None:
    assert eval_batch_size(128, None) == EVAL_BATCH_SIZE == 128
    assert eval_batch_size(64, 1000) == 128
    assert eval_batch_size(8192, 10**7) == 1
