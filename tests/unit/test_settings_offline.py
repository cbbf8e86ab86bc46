"""Settings come from the environment; the offline variables never override the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.offline import OFFLINE_DEFAULTS, apply_offline_environment
from conveyor.registry import normalize_url
from conveyor.settings import Settings

pytestmark = pytest.mark.unit


def test_home_and_registry_url_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    settings = Settings()
    assert settings.home == tmp_path / "h"
    assert settings.registry_url == f"sqlite:///{tmp_path / 'h' / 'registry.db'}"
    monkeypatch.setenv("CONVEYOR_DB_URL", "postgresql://u@127.0.0.1/x")
    assert Settings().registry_url == "postgresql://u@127.0.0.1/x"


def test_default_home_is_under_the_user_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_HOME", raising=False)
    assert Settings().home == (Path.home() / ".conveyor").resolve()


def test_offline_environment_sets_missing_values_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    env = {"HF_HUB_OFFLINE": "0", "BENTOML_HOME": str(tmp_path / "mine")}
    changed = apply_offline_environment(settings, env)
    assert env["HF_HUB_OFFLINE"] == "0" and "HF_HUB_OFFLINE" not in changed
    assert env["BENTOML_HOME"] == str(tmp_path / "mine")
    assert env["PREFECT_HOME"] == str(tmp_path / "home" / "prefect")
    for home in ("PREFECT_HOME", "BENTOML_HOME", "TORCH_EXTENSIONS_DIR"):
        assert Path(env[home]).is_dir()
    for name, value in OFFLINE_DEFAULTS.items():
        if name != "HF_HUB_OFFLINE":
            assert env[name] == value
    assert env["TORCH_EXTENSIONS_DIR"].endswith("torch_extensions")


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://a@h/db") == "postgresql+psycopg://a@h/db"
    assert normalize_url("postgres://a@h/db") == "postgresql+psycopg://a@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
