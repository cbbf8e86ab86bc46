"""One settings object for the whole platform, read from the environment.

Nothing here touches the disk or the environment at import time: call
:func:`load_settings` where a process starts (the CLI, a flow, the service).
"""

from __future__ import annotations

import getpass
import socket
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_settings"]


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Settings(BaseSettings):
    """Where conveyor keeps its state and who is acting.

    Every field reads ``CONVEYOR_<FIELD>`` from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", frozen=True, extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".conveyor",
        description="Root of registry, model folders, Prefect and BentoML homes.",
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default is a SQLite file under home.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "conveyor",
        description="Caches that outlive a home: the DeepSpeed/torch JIT build cache.",
    )
    actor: str = Field(
        default_factory=_default_actor,
        description="Who is acting, written into the registry and the audit log.",
    )

    @field_validator("home", "cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def registry_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.home / 'registry.db'}"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    @property
    def torch_extensions_dir(self) -> Path:
        return self.cache_dir / "torch_extensions"


def load_settings() -> Settings:
    """Read the settings from the environment (a fresh object each call)."""
    return Settings()
