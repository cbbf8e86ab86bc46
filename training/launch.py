"""``--gpus N``: run the same fine-tune in N processes through the DeepSpeed launcher.

The parent (the CLI) builds the launcher command, waits for it, and reads the result
that rank 0 of :mod:`training.worker` writes; multi-node runs add a hostfile
(see infra/deepspeed/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.errors import TrainingError

__all__ = ["launch", "launcher_command"]


def launcher_command(
    recipe_path: Path,
    overrides: Sequence[str],
    *,
    gpus: int,
    result_file: Path,
    resume: bool = False,
    hostfile: Path | None = None,
    master_port: int | None = None,
    ds_config: Path | None = None,
) -> list[str]:
    """The ``deepspeed`` launcher command line (pure; tested without a GPU)."""
    command = [sys.executable, "-m", "deepspeed.launcher.runner"]
    if hostfile is not None:
        command += ["--hostfile", str(hostfile)]
    command += ["--num_gpus", str(gpus), "--no_local_rank"]
    if master_port is not None:
        command += ["--master_port", str(master_port)]
    command += ["--module", "training.worker", str(recipe_path)]
    for override in overrides:
        command += ["--set", override]
    if resume:
        command.append("--resume")
    if ds_config is not None:
        command += ["--ds-config", str(ds_config)]
    command += ["--result-file", str(result_file)]
    return command


def launch(
    recipe_path: Path,
    overrides: Sequence[str],
    *,
    gpus: int,
    resume: bool = False,
    hostfile: Path | None = None,
    ds_config: Path | None = None,
) -> dict[str, Any]:
    """Run the launcher (output streams through); return rank 0's result."""
    if hostfile is None and not _cuda_visible():
        raise TrainingError(
            f"training.gpus is {gpus} but no CUDA GPU is visible here; use --gpus 0 for one CPU "
            "process, or pass --hostfile to train on other machines"
        )
    with tempfile.TemporaryDirectory(prefix="conveyor-launch-") as tmp:
        result_file = Path(tmp) / "result.json"
        command = launcher_command(
            recipe_path,
            overrides,
            gpus=gpus,
            result_file=result_file,
            resume=resume,
            hostfile=hostfile,
            ds_config=ds_config,
        )
        env = {**os.environ, "PYTHONPATH": _repo_pythonpath()}
        # The workers' output goes to stderr: stdout is kept for the VERSION the CLI prints.
        completed = subprocess.run(command, env=env, check=False, stdout=sys.stderr)
        if completed.returncode != 0 or not result_file.is_file():
            raise TrainingError(
                f"the DeepSpeed launcher exited with {completed.returncode}; see its output above"
            )
        loaded: dict[str, Any] = json.loads(result_file.read_text())
        return loaded


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _repo_pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
