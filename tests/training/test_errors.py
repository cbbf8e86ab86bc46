"""Messages that tell the user which knob to turn (the GPU cannot run here: message only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.errors import NonFiniteLossError, OutOfMemoryError

pytestmark = pytest.mark.unit


def test_out_of_memory_names_the_knobs() -> None:
    message = str(OutOfMemoryError(batch_size=64, max_length=256, zero_stage=0))
    assert "\n" not in message
    assert "lower training.batch_size (now 64)" in message
    assert "training.gradient_accumulation_steps" in message
    assert "lower model.max_length (now 256)" in message
    assert "raise training.zero_stage (now 0)" in message
    assert "zero_stage" not in str(OutOfMemoryError(batch_size=8, max_length=64, zero_stage=3))


def test_non_finite_loss_without_a_checkpoint() -> None:
    message = str(NonFiniteLossError(float("inf"), 3, None))
    assert message.startswith("loss became inf at step 3")
    assert message.endswith("no checkpoint was written before it")
    kept = str(NonFiniteLossError(float("nan"), 9, Path("/c/step-00000008")))
    assert "last good checkpoint kept at /c/step-00000008" in kept
