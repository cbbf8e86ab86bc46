"""A build lock left by a killed build is cleared before the engine starts; one a live build
holds, or one just released, is not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.build_locks import clear_stale_build_locks

pytestmark = pytest.mark.unit


def _lock(root: Path, name: str, age_seconds: float) -> Path:
    path = root / name / "lock"
    path.parent.mkdir(parents=True)
    path.touch()
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_only_a_lock_no_process_holds_and_older_than_a_moment_is_removed(
    tmp_path: Path,
) -> None:
    stale = _lock(tmp_path, "deepspeed_shm_comm", age_seconds=600)
    fresh = _lock(tmp_path, "fresh_op", age_seconds=0)
    held = tmp_path / "held_op" / "lock"
    held.parent.mkdir()
    # a live build: torch's FileBaton creates the lock with O_EXCL and keeps it open
    builder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time; os.open(sys.argv[1], os.O_CREAT | os.O_EXCL); "
            "print('held', flush=True); time.sleep(60)",
            str(held),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert builder.stdout is not None and builder.stdout.readline().strip() == "held"
        then = time.time() - 600
        os.utime(held, (then, then))  # old, yet held: a slow build, not a dead one

        removed = clear_stale_build_locks(tmp_path)

        assert removed == [stale]
        assert not stale.exists()
        assert fresh.exists() and held.exists()
    finally:
        builder.kill()
        builder.wait()
    # its builder is gone now: the lock it left is stale too
    assert clear_stale_build_locks(tmp_path) == [held]


def test_a_folder_without_locks_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "op").mkdir()
    (tmp_path / "op" / "op.so").write_bytes(b"\x7fELF")
    assert clear_stale_build_locks(tmp_path) == []
    assert (tmp_path / "op" / "op.so").exists()
