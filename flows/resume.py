"""Whether a deployment's checkpoints belong to this very run (same data, same recipe)."""

from __future__ import annotations

from conveyor.recipe import Recipe
from conveyor.settings import Settings
from conveyor.splits import fingerprint_splits

__all__ = ["resumable"]


def resumable(settings: Settings, recipe: Recipe) -> bool:
    from training import checkpoint_dir
    from training.checkpoints import latest_checkpoint, read_run_meta
    from training.errors import ResumeError

    directory = checkpoint_dir(settings, recipe.name)
    if not directory.is_dir():
        return False
    try:
        meta = read_run_meta(directory)
    except ResumeError:
        return False
    same_data = meta.get("data_fingerprint") == fingerprint_splits(recipe.data.splits())
    same_recipe = meta.get("recipe") == recipe.model_dump(mode="json")
    return same_data and same_recipe and latest_checkpoint(directory) is not None
