"""Stale build locks of torch's C++ extensions, found and cleared before the engine starts.

DeepSpeed compiles its C++ ops once per machine through torch's extension builder, which takes
a lock file in the op's build folder (``TORCH_EXTENSIONS_DIR/NAME/lock``, created with
``O_EXCL`` and held open until the build ends). A build killed mid-way (Ctrl-C, kill -9, a
test timeout) leaves that file behind, and every later start on the machine then waits for
it forever, silently. A lock is stale when no live process holds it open (the builder keeps
its descriptor until it removes the file) and it has stood for a while (a release closes the
descriptor just before it deletes the file: that instant is not staleness). Only processes
this user may inspect are seen, so the folder must be this user's (conveyor's cache is).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["clear_stale_build_locks", "extensions_root"]

log = logging.getLogger("training")

LOCK_NAME = "lock"
MIN_AGE_SECONDS = 5.0
_PROC_FDS = Path("/proc/self/fd")


def extensions_root() -> Path:
    """Where torch builds extensions: ``TORCH_EXTENSIONS_DIR``, else torch's default."""
    configured = os.environ.get("TORCH_EXTENSIONS_DIR")
    if configured:
        return Path(configured)
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def clear_stale_build_locks(
    root: Path | None = None, *, min_age_seconds: float = MIN_AGE_SECONDS
) -> list[Path]:
    """Remove the build locks under ``root`` that no live process holds and that are older
    than ``min_age_seconds``; each removal is logged with its age. Returns what was removed."""
    if not _PROC_FDS.is_dir():  # no way to tell a live build from a dead one: leave them
        return []
    root = root if root is not None else extensions_root()
    locks = [path for path in root.glob(f"*/{LOCK_NAME}") if path.is_file()]
    if not locks:
        return []
    held = set(_open_files())
    removed = []
    for lock in locks:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:  # its build just ended
            continue
        if age < min_age_seconds or lock.resolve() in held:
            continue
        try:
            lock.unlink()
        except FileNotFoundError:
            continue
        log.warning(
            "removed a stale build lock %s (%.0f s old, held by no process: a build was "
            "killed mid-way); the engine builds or loads that op again",
            lock,
            age,
        )
        removed.append(lock)
    return removed


def _open_files() -> Iterator[Path]:
    """Every file a process this user can see holds open (Linux's /proc; none elsewhere)."""
    proc = Path("/proc")
    for pid in proc.iterdir() if proc.is_dir() else ():
        if not pid.name.isdigit():
            continue
        try:
            descriptors = list((pid / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for descriptor in descriptors:
            try:
                yield Path(os.readlink(descriptor))
            except OSError:
                continue
