"""How often the step loop reads the loss back from the device (``LoopSettings.loss_every``).

On a GPU each read waits for the step to finish, so the CPU cannot queue the next one meanwhile.
Reading every N steps must leave training itself unchanged, still read at every evaluation,
checkpoint and the last step, and still stop on a non-finite loss (at the next read).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from training import engine as ds
from training import loop
from training.checkpoints import TrainState
from training.data import Encoded
from training.errors import NonFiniteLossError
from training.loop import LoopSettings, fit

pytestmark = pytest.mark.integration
STEPS = 8


def _model() -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    config.num_labels = 3
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def _data() -> Encoded:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (32, 12), generator=generator).tolist()
    return Encoded(ids, [i % 3 for i in range(32)])


def _fit(model: Any, loss_every: int, checkpoint_dir: Path | None = None) -> tuple[Any, Any]:
    ds.ensure_distributed_env()
    optimizer = ds.build_optimizer(model, 1e-2, 0.0)
    scheduler = ds.build_scheduler(optimizer, STEPS, 0.0)
    config = ds.deepspeed_config(micro_batch_size=4, gradient_accumulation_steps=1, world_size=1,
                                 zero_stage=0, precision="fp32", max_grad_norm=None)  # fmt: skip
    engine = ds.initialize(model, optimizer, scheduler, config)
    cfg = LoopSettings(total_steps=STEPS, batch_size=4, seed=1, checkpoint_every=6,
                       checkpoint_dir=checkpoint_dir, eval_every=3, show_progress=False,
                       clip_grad_norm=1.0, loss_every=loss_every)  # fmt: skip
    data = _data()
    return fit(engine, data, data.take(8), pad_id=0, cfg=cfg, state=TrainState()), engine


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    read = loop._mean_loss

    def counted(running: torch.Tensor, count: int, world: int) -> float:
        reads.append(count)
        return read(running, count, world)

    monkeypatch.setattr(loop, "_mean_loss", counted)
    return reads


def test_reading_the_loss_every_n_steps_trains_the_same(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = _model()
    every_step, engine_a = _fit(copy.deepcopy(base), loss_every=1)
    reads = _counting_reads(monkeypatch)
    sparse, engine_b = _fit(copy.deepcopy(base), loss_every=4, checkpoint_dir=tmp_path)
    # steps 3 and 6 (evaluations), 4 and 8 (every 4th, 8 the last), 6 also a checkpoint
    assert reads == [3, 1, 2, 2], reads  # micro-batches since the last read, at steps 3, 4, 6, 8
    for a, b in zip(engine_a.module.parameters(), engine_b.module.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sparse.metrics == every_step.metrics
    assert [h["step"] for h in sparse.state.history] == [3.0, 6.0, 8.0]


def test_a_non_finite_loss_still_stops_training_at_the_next_read() -> None:
    model = _model()
    calls = [0]

    def poison(_module: Any, _inputs: Any, output: Any) -> Any:
        calls[0] += 1
        if model.training and calls[0] == 2:  # the second training step's loss is NaN
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError) as caught:
        _fit(model, loss_every=4)
    assert caught.value.step == 3  # read at the first evaluation, step 3, not at step 2
