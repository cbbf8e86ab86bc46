"""Shared fixtures: every test gets its own CONVEYOR_HOME and the offline environment; tiny
models and tokenizers (built by ``testbed.tiny_models``) for the folders that need them."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry, open_registry
from conveyor.settings import Settings
from testbed.tiny_models import (
    minilm_tokenizer,
    write_smollm2_tokenizer,
    write_tiny_bert,
    write_tiny_llama,
)

# Shared JIT cache for DeepSpeed/torch extensions: kept across test sessions and CI steps.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "conveyor" / "torch_extensions")
)
_SESSION_HOME = Path(tempfile.gettempdir()) / "conveyor-test-session-home"
apply_offline_environment(Settings(home=_SESSION_HOME), os.environ)
for _tool_home in ("PREFECT_HOME", "BENTOML_HOME"):
    os.environ.pop(_tool_home, None)  # set per test by the conveyor_home fixture


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


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """The shipped MiniLM tokenizer (the tiny classifiers' and the tiny BERT's)."""
    return minilm_tokenizer()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT (random weights) with the MiniLM tokenizer, as a model folder."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tokenizer and chat template of SmolLM2-135M-Instruct, saved as a folder."""
    return write_smollm2_tokenizer(tmp_path_factory.mktemp("smollm2-tokenizer"))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A 2-layer, hidden-32 Llama (random weights) with SmolLM2's tokenizer, as a model folder."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_tokenizer_dir)


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


@pytest.fixture
def capture_db() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1:5432 for a capture sink; its libpq URL.
    Dropped afterwards, whatever connections are left on it."""
    import psycopg

    from testbed.live_server import port_open

    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"conveyor_capture_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"cannot create a database on 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
