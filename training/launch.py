"""Where a fine-tune runs: in this process, or N processes through the DeepSpeed launcher.

``LaunchSpec`` says which (CPU processes on gloo, local GPUs, other nodes by hostfile);
``launch`` starts ``python -m deepspeed.launcher.runner ... --module training.worker``
on the resolved recipe, waits, and reads what the ranks left in the run folder: rank
0's result, or which rank died and how (see infra/deepspeed/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.ports import free_port
from training.errors import TrainingError

__all__ = ["LaunchSpec", "launch", "launcher_command", "rank_failure", "remove_shm_buffers"]

RESULT_FILE = "result.json"
RECIPE_FILE = "recipe.json"
DS_CONFIG_FILE = "ds_config.json"


@dataclass(frozen=True)
class LaunchSpec:
    """How many processes and where; ``in_process`` when 1 CPU process and no hostfile."""

    processes: int = 1
    gpus: int = 0
    hostfile: Path | None = None
    ds_config: Path | dict[str, Any] | None = None
    master_port: int | None = None

    def __post_init__(self) -> None:
        if self.processes < 1 or self.gpus < 0:
            raise TrainingError("--processes must be at least 1 and --gpus at least 0")
        if self.gpus > 0 and self.processes > 1:
            raise TrainingError("--processes is for CPU runs; with --gpus N there is one per GPU")

    @property
    def in_process(self) -> bool:
        return self.processes <= 1 and self.gpus == 0 and self.hostfile is None

    @property
    def on_cpu(self) -> bool:
        return self.gpus == 0


def launcher_command(
    run_dir: Path,
    *,
    spec: LaunchSpec,
    resume: bool = False,
    master_port: int | None = None,
) -> list[str]:
    """The ``deepspeed`` launcher command line (pure; tested without a GPU).

    The worker reads the resolved recipe (overrides applied, paths absolute) and the
    DeepSpeed config from ``run_dir``, where ``launch`` wrote them.
    """
    command = [sys.executable, "-m", "deepspeed.launcher.runner"]
    if spec.hostfile is not None:
        command += ["--hostfile", str(spec.hostfile)]
    per_node = spec.gpus if spec.gpus > 0 else spec.processes
    command += ["--num_gpus", str(per_node), "--no_local_rank"]
    port = master_port if master_port is not None else spec.master_port
    if port is not None:
        command += ["--master_port", str(port)]
    command += ["--module", "training.worker", str(run_dir)]
    if resume:
        command.append("--resume")
    return command


def launch(recipe: dict[str, Any], spec: LaunchSpec, *, resume: bool = False) -> dict[str, Any]:
    """Run the launcher (its output streams to stderr); return rank 0's result.

    ``recipe`` is the resolved recipe as JSON (``Recipe.model_dump(mode="json")``).
    Raises TrainingError naming the rank that failed when the launcher exits non-zero.
    """
    if not spec.on_cpu and spec.hostfile is None and not _cuda_visible():
        raise TrainingError(
            f"training.gpus is {spec.gpus} but no CUDA GPU is visible here; use --gpus 0 and "
            "--processes N for CPU processes, or pass --hostfile to train on other machines"
        )
    with tempfile.TemporaryDirectory(prefix="conveyor-launch-") as tmp:
        run_dir = Path(tmp)
        (run_dir / RECIPE_FILE).write_text(json.dumps(recipe), encoding="utf-8")
        extra = _ds_config(spec.ds_config)
        if extra is not None:
            (run_dir / DS_CONFIG_FILE).write_text(json.dumps(extra), encoding="utf-8")
        port = spec.master_port if spec.master_port is not None else free_port()
        command = launcher_command(run_dir, spec=spec, resume=resume, master_port=port)
        # The workers' output goes to stderr: stdout is kept for the VERSION the CLI prints.
        try:
            completed = subprocess.run(
                command, env=_launch_env(spec), check=False, stdout=sys.stderr
            )
        finally:
            remove_shm_buffers(port)
        result = run_dir / RESULT_FILE
        if completed.returncode != 0 or not result.is_file():
            raise TrainingError(rank_failure(run_dir, completed.returncode))
        loaded: dict[str, Any] = json.loads(result.read_text())
        return loaded


def rank_failure(run_dir: Path, returncode: int) -> str:
    """Say which rank failed first and how, from the status files the ranks wrote.

    A rank that started but wrote no end status died without a word (SIGKILL, the OOM
    killer, a segfault): that is the cause; ranks that raised say their error; ranks
    the launcher stopped afterwards say so and are not the cause.
    """
    statuses = {}
    for path in sorted(run_dir.glob("rank-*.json")):
        statuses[int(path.stem.removeprefix("rank-"))] = json.loads(path.read_text())
    silent = [r for r, s in statuses.items() if "end" not in s]
    raised = [r for r, s in statuses.items() if s.get("end") == "error"]
    if silent:
        rank = silent[0]
        cause = (
            f"rank {rank} (pid {statuses[rank]['pid']}) died without an error: killed by a "
            "signal (SIGKILL, the OOM killer) or a crash"
        )
    elif raised:
        rank = raised[0]
        cause = f"rank {rank} failed: {statuses[rank].get('error', 'unknown error')}"
    elif not statuses:
        cause = "no rank started (see the launcher's output above)"
    else:
        cause = "every rank ended but rank 0 wrote no result"
    return (
        f"the DeepSpeed launcher exited with {returncode}: {cause}; the other ranks were "
        "stopped. The last complete checkpoint is kept: rerun with --resume to continue"
    )


def remove_shm_buffers(master_port: int, shm: Path = Path("/dev/shm")) -> list[Path]:
    """Delete the run's CPU all-reduce buffers (~69 MB per rank, DeepSpeed 0.19.8).

    DeepSpeed's shm comm op creates ``deepspeed_allreduce_buffer_*_<addr>_<port>_<rank>``
    and never unlinks it, not even on a clean exit; the port is this run's own.
    """
    removed = []
    for path in shm.glob(f"deepspeed_allreduce_buffer_*_{master_port}_*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _ds_config(config: Path | dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None or isinstance(config, dict):
        return config
    from training.engine import read_config_file

    return read_config_file(config)


def _launch_env(spec: LaunchSpec) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": _repo_pythonpath()}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # an in-process run in this process set them; the launcher sets its own
    if spec.on_cpu:
        env["DS_ACCELERATOR"] = "cpu"  # CPU processes on gloo even where a GPU is visible
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // spec.processes)))
    return env


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _repo_pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
