"""The DeepSpeed config we build, the LR schedule, process setup, the launcher command,
how a failed launch is explained, RNG state as JSON."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from testbed.paths import REPO_ROOT
from training.checkpoints import _restore_rng, _rng_state, use_weights_only_loading
from training.engine import (
    build_optimizer,
    build_scheduler,
    deepspeed_config,
    ensure_distributed_env,
    merge_config,
    move_clipping_to_loop,
    read_config_file,
    resolve_precision,
)
from training.errors import ResumeError, TrainingError
from training.launch import LaunchSpec, launcher_command, rank_failure, remove_shm_buffers

pytestmark = pytest.mark.unit

INFRA = REPO_ROOT / "infra" / "deepspeed"


def _config(**kwargs: object) -> dict[str, Any]:
    base: dict[str, object] = dict(
        micro_batch_size=8,
        gradient_accumulation_steps=4,
        world_size=2,
        zero_stage=2,
        precision="fp32",
        max_grad_norm=1.0,
    )
    base.update(kwargs)
    return deepspeed_config(**base)  # type: ignore[arg-type]


def test_config_never_names_an_optimizer_and_sizes_the_batch() -> None:
    config = _config()
    assert "optimizer" not in config
    assert config["train_batch_size"] == 8 * 4 * 2
    assert config["zero_optimization"] == {"stage": 2}
    assert config["gradient_clipping"] == 1.0


def test_bf16_uses_torch_autocast_not_bf16_mode() -> None:
    config = _config(precision="bf16")
    assert config["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert "bf16" not in config


def test_recipe_deepspeed_section_merges_over_ours() -> None:
    config = _config(extra={"zero_optimization": {"offload_optimizer": {"device": "cpu"}}})
    assert config["zero_optimization"] == {"stage": 2, "offload_optimizer": {"device": "cpu"}}
    with pytest.raises(ValueError, match="optimizer"):
        _config(extra={"optimizer": {"type": "AdamW"}})
    assert merge_config({"a": {"b": 1}}, {"a": {"c": 2}, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}


def test_auto_precision_is_fp32_on_cpu() -> None:
    assert resolve_precision("auto", on_gpu=False) == "fp32"
    assert resolve_precision("bf16", on_gpu=False) == "bf16"


def test_warmup_then_linear_decay() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, lr=1.0, weight_decay=0.1)
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_ratio=0.2)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(1 / 8)
    assert lrs == sorted(lrs[:3]) + sorted(lrs[3:], reverse=True)


def test_no_weight_decay_on_biases() -> None:
    optimizer = build_optimizer(torch.nn.Linear(2, 2), lr=1e-3, weight_decay=0.5)
    decayed, plain = optimizer.param_groups
    assert [p.ndim for p in decayed["params"]] == [2] and decayed["weight_decay"] == 0.5
    assert [p.ndim for p in plain["params"]] == [1] and plain["weight_decay"] == 0.0


def test_single_process_env_is_filled_in_and_respected() -> None:
    env: dict[str, str] = {}
    changed = ensure_distributed_env(env)
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and int(env["MASTER_PORT"]) > 0
    assert changed == env
    launcher_env = {"RANK": "3", "WORLD_SIZE": "8"}
    assert ensure_distributed_env(launcher_env) == {} and launcher_env["RANK"] == "3"


def test_launcher_command() -> None:
    spec = LaunchSpec(gpus=4, hostfile=Path("hosts"))
    command = launcher_command(Path("/tmp/run"), spec=spec, resume=True, master_port=29511)
    assert command[:3] == [sys.executable, "-m", "deepspeed.launcher.runner"]
    joined = " ".join(command)
    assert "--hostfile hosts --num_gpus 4 --no_local_rank --master_port 29511" in joined
    assert joined.endswith("--module training.worker /tmp/run --resume")
    cpu = " ".join(launcher_command(Path("/tmp/run"), spec=LaunchSpec(processes=2)))
    assert "--num_gpus 2 --no_local_rank --module training.worker /tmp/run" in cpu


def test_launch_spec_says_in_process_or_launcher() -> None:
    assert LaunchSpec().in_process and LaunchSpec(processes=1).on_cpu
    assert not LaunchSpec(processes=2).in_process
    assert not LaunchSpec(gpus=1).in_process and not LaunchSpec(gpus=1).on_cpu
    assert not LaunchSpec(hostfile=Path("hosts")).in_process
    with pytest.raises(TrainingError, match="--processes is for CPU runs"):
        LaunchSpec(processes=2, gpus=2)


def _status(run_dir: Path, rank: int, **status: object) -> None:
    (run_dir / f"rank-{rank}.json").write_text(json.dumps({"pid": 100 + rank, **status}))


def test_rank_failure_names_the_rank_that_died(tmp_path: Path) -> None:
    _status(tmp_path, 0, end="stopped", by="SIGTERM")
    _status(tmp_path, 1, started=True)
    message = rank_failure(tmp_path, 247)
    assert "exited with 247: rank 1 (pid 101) died without an error" in message
    assert "--resume" in message
    _status(tmp_path, 1, end="error", error="ValueError: boom")
    assert "rank 1 failed: ValueError: boom" in rank_failure(tmp_path, 1)
    assert "no rank started" in rank_failure(tmp_path / "none", 1)


def test_only_this_runs_shm_buffers_are_removed(tmp_path: Path) -> None:
    for port, rank in ((29511, 0), (29511, 1), (29512, 0)):
        (tmp_path / f"deepspeed_allreduce_buffer_0_127.0.0.1_{port}_{rank}").write_bytes(b"x")
    assert len(remove_shm_buffers(29511, shm=tmp_path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == [
        "deepspeed_allreduce_buffer_0_127.0.0.1_29512_0"
    ]


class _Payload:
    """Anything that is not a tensor or a plain value: unpickling it could run code."""


def test_checkpoint_files_are_read_weights_only(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    holder = SimpleNamespace(checkpoint_engine=TorchCheckpointEngine())
    use_weights_only_loading(holder)
    plain, hostile = tmp_path / "plain.pt", tmp_path / "hostile.pt"
    torch.save({"module": {"w": torch.ones(2)}, "conveyor": {"step": 3}, "rng": "{}"}, plain)
    torch.save({"module": {}, "extra": _Payload()}, hostile)
    assert holder.checkpoint_engine.load(str(plain))["conveyor"] == {"step": 3}
    with pytest.raises(ResumeError, match="holds more than weights and plain values"):
        holder.checkpoint_engine.load(str(hostile))


def test_rng_state_round_trips_through_json() -> None:
    saved = _rng_state()
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    _restore_rng(json.loads(json.dumps(saved)))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first


def test_clipping_moves_to_the_loop_only_where_gradients_are_whole() -> None:
    config, norm = move_clipping_to_loop(_config(zero_stage=0))
    assert norm == 1.0 and config["gradient_clipping"] == 0.0
    for kept in (_config(zero_stage=2), _config(zero_stage=0, precision="fp16")):
        assert move_clipping_to_loop(kept) == (kept, None)
    assert move_clipping_to_loop(_config(zero_stage=0, max_grad_norm=None))[1] is None


@pytest.mark.parametrize("path", sorted(INFRA.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_deepspeed_config_loads_and_merges(path: Path) -> None:
    extra = read_config_file(path)
    config = _config(extra=extra)
    assert config["zero_optimization"]["stage"] == extra["zero_optimization"]["stage"]
    assert "optimizer" not in config


def test_a_bad_deepspeed_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"optimizer": {"type": "Adam"}}')
    with pytest.raises(TrainingError, match="drop 'optimizer'"):
        read_config_file(bad)
    bad.write_text("[1, 2")
    with pytest.raises(TrainingError, match="is not valid JSON"):
        read_config_file(bad)
    with pytest.raises(TrainingError, match="no such file"):
        read_config_file(tmp_path / "missing.json")


def test_head_gets_its_own_learning_rate() -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from training.engine import build_optimizer, is_head

    config = BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
    )
    model = BertForSequenceClassification(config)
    assert is_head("classifier.weight") and is_head("bert.pooler.dense.bias")
    assert not is_head("bert.encoder.layer.0.output.dense.weight")
    plain = build_optimizer(model, 1e-4, 0.01)
    assert [g["lr"] for g in plain.param_groups] == [1e-4, 1e-4]
    boosted = build_optimizer(model, 1e-4, 0.01, head_lr_multiplier=50)
    head = boosted.param_groups[-1]
    assert head["lr"] == pytest.approx(5e-3) and head["weight_decay"] == 0.0
    head_ids = {id(p) for p in head["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in head_ids}
    assert names == {n for n, _ in model.named_parameters() if is_head(n)}
    assert sum(len(g["params"]) for g in boosted.param_groups) == len(list(model.parameters()))


_JOIN_ON_A_TAKEN_PORT = """
import os, sys
import torch
from training.engine import init_process_group
init_process_group("gloo", attempts=int(sys.argv[1]))
assert torch.distributed.get_world_size() == 1
print("port", os.environ["MASTER_PORT"])
"""


def test_a_lone_process_whose_rendezvous_port_was_taken_picks_another() -> None:
    import socket
    import subprocess

    from conveyor.ports import free_port

    taken = free_port()
    with socket.socket() as squatter:  # another process bound it between pick and bind
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(taken),
        }
        done = subprocess.run(
            [sys.executable, "-c", _JOIN_ON_A_TAKEN_PORT, "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO_ROOT,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    # the store did meet the squatter (EADDRINUSE), and the process moved on
    assert f"rendezvous port {taken} was taken before it was bound" in done.stderr
    assert f"port {taken}" not in done.stdout and "port " in done.stdout
