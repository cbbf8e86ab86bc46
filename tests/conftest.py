"""Shared fixtures: every test gets its own CONVEYOR_HOME and the offline environment."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry, open_registry
from conveyor.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "recipes"
DATA_DIR = REPO_ROOT / "data"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# Shared JIT cache for DeepSpeed/torch extensions: kept across test sessions and CI steps.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "conveyor" / "torch_extensions")
)
_SESSION_HOME = Path(tempfile.gettempdir()) / "conveyor-test-session-home"
apply_offline_environment(Settings(home=_SESSION_HOME), os.environ)
for _tool_home in ("PREFECT_HOME", "BENTOML_HOME"):
    os.environ.pop(_tool_home, None)  # set per test by the conveyor_home fixture


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def conveyor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CONVEYOR_HOME (SQLite registry, model folders, tool homes) for one test."""
    home = tmp_path / "conveyor-home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.setenv("CONVEYOR_ACTOR", "pytest@localhost")
    monkeypatch.setenv("PREFECT_HOME", str(home / "prefect"))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    return home


@pytest.fixture
def settings(conveyor_home: Path) -> Settings:
    return Settings()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = open_registry(settings)
    yield reg
    reg.close()


_KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test is exactly one kind: unit (the default), integration or e2e.

    A test that names none is unit, so `-m unit` runs every fast test; one that names two
    kinds is a mistake and stops the collection.
    """
    for item in items:
        kinds = sorted({mark.name for mark in item.iter_markers() if mark.name in _KINDS})
        if len(kinds) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(kinds)}: pick one")
        if not kinds:
            item.add_marker(pytest.mark.unit)
