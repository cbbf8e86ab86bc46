"""One process of a launcher run: ``python -m training.worker RECIPE [--set k=v] [--resume]``.

Started by the DeepSpeed launcher (RANK, WORLD_SIZE, ... set by it); rank 0 writes
the result (version, model folder, metrics) to ``--result-file`` for the CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.offline import apply_offline_environment
from conveyor.recipe import load_recipe
from conveyor.settings import load_settings
from training.engine import read_config_file
from training.fine_tune import fine_tune

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="training.worker")
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--ds-config", type=Path, default=None)
    parser.add_argument("--result-file", type=Path, required=True)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings()
    apply_offline_environment(settings)
    recipe = load_recipe(args.recipe, args.overrides)
    extra = read_config_file(args.ds_config) if args.ds_config else None
    result = fine_tune(
        recipe, settings, resume=args.resume, show_progress=rank == 0, deepspeed_config=extra
    )
    if result.version is not None:
        payload = {
            "version": result.version,
            "model_dir": str(result.model_dir),
            "metrics": result.metrics,
            "steps": result.steps,
        }
        args.result_file.write_text(json.dumps(payload))


if __name__ == "__main__":
    try:
        main()
    except ConveyorError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
