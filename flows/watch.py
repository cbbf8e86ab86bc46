"""Watch a folder for new training data and emit ``conveyor.data.landed`` for a deployment.

A file counts as landed once its size and modification time stay the same across two
polls (a copy in progress is not picked up half-written).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.events import DATA_LANDED, resource_id
from conveyor.recipe import SPLIT_SUFFIXES

__all__ = ["FolderWatch", "emit_data_landed", "watch_folder"]

Stamp = tuple[int, int]


@dataclass
class FolderWatch:
    """What has been seen in a folder: files already announced and files still settling."""

    folder: Path
    announced: dict[Path, Stamp] = field(default_factory=dict)
    settling: dict[Path, Stamp] = field(default_factory=dict)

    def poll(self) -> list[Path]:
        """Files that settled since the last poll (new, or changed since announced)."""
        landed: list[Path] = []
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or path.suffix.lower() not in SPLIT_SUFFIXES:
                continue
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if self.announced.get(path) == stamp:
                continue
            if self.settling.get(path) == stamp and stat.st_size > 0:
                self.announced[path] = stamp
                self.settling.pop(path)
                landed.append(path)
            else:
                self.settling[path] = stamp
        return landed


def emit_data_landed(deployment: str, path: Path) -> None:
    from prefect.events import emit_event

    emit_event(
        event=DATA_LANDED,
        resource={"prefect.resource.id": resource_id(deployment)},
        payload={"path": str(path.resolve()), "deployment": deployment},
    )


def watch_folder(
    folder: Path,
    deployment: str,
    *,
    interval: float = 5.0,
    existing: bool = False,
    rounds: int | None = None,
    announce: Callable[[str, Path], None] = emit_data_landed,
) -> FolderWatch:
    """Poll ``folder`` every ``interval`` s; announce each file that landed."""
    watch = FolderWatch(folder)
    if not existing:  # files already there when the watch starts are not news
        watch.poll()
        watch.announced.update(watch.settling)
        watch.settling.clear()
    done = 0
    while rounds is None or done < rounds:
        for path in watch.poll():
            announce(deployment, path)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval)
    return watch
