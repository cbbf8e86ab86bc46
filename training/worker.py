"""One process of a launcher run: ``python -m training.worker RUN_DIR [--resume]``.

Started by the DeepSpeed launcher (RANK, WORLD_SIZE, ... set by it). ``RUN_DIR`` holds
what :func:`training.launch.launch` wrote: the resolved recipe and the DeepSpeed config.
Each rank records there that it started and how it ended (``rank-N.json``), so the
parent can name the rank that failed; rank 0 writes the result (version, model folder,
metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.offline import apply_offline_environment
from conveyor.recipe import recipe_from_dict
from conveyor.settings import load_settings
from training.engine import read_config_file
from training.fine_tune import fine_tune
from training.launch import DS_CONFIG_FILE, RECIPE_FILE, RESULT_FILE

__all__ = ["main"]


def _write_status(run_dir: Path, rank: int, status: dict[str, Any]) -> None:
    path = run_dir / f"rank-{rank}.json"
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), **status}))
    partial.replace(path)


def _on_sigterm(run_dir: Path, rank: int) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        _write_status(run_dir, rank, {"end": "stopped", "by": "SIGTERM"})
        sys.exit(128 + signum)

    return handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="training.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    _write_status(run_dir, rank, {"started": True})
    signal.signal(signal.SIGTERM, _on_sigterm(run_dir, rank))  # the launcher stopping us
    try:
        settings = load_settings()
        apply_offline_environment(settings)
        recipe = recipe_from_dict(json.loads((run_dir / RECIPE_FILE).read_text()))
        ds_file = run_dir / DS_CONFIG_FILE
        extra = read_config_file(ds_file) if ds_file.is_file() else None
        result = fine_tune(
            recipe, settings, resume=args.resume, show_progress=rank == 0, deepspeed_config=extra
        )
    except BaseException as exc:
        if not isinstance(exc, SystemExit):
            _write_status(run_dir, rank, {"end": "error", "error": f"{type(exc).__name__}: {exc}"})
        raise
    if result.version is not None:
        payload = {
            "version": result.version,
            "model_dir": str(result.model_dir),
            "metrics": result.metrics,
            "steps": result.steps,
            "history": result.history,
            "stopped_early": result.stopped_early,
        }
        (run_dir / RESULT_FILE).write_text(json.dumps(payload))
    _write_status(run_dir, rank, {"end": "ok"})


if __name__ == "__main__":
    try:
        main()
    except ConveyorError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
