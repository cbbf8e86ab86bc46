"""One settings object for the whole platform, read from the environment.

Nothing here touches the disk or the environment at import time: call
:func:`load_settings` where a process starts (the CLI, a flow, the service).
"""

from __future__ import annotations

import getpass
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LOOPBACK_HOSTS", "Settings", "load_settings"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


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

    serve_host: str = Field(
        default="127.0.0.1",
        description="Address `conveyor serve` binds; beyond loopback, API keys are required.",
    )
    require_api_key: bool | None = Field(
        default=None,
        description="Require `Authorization: Bearer` keys; default: only beyond loopback.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate limits, quotas and (by default) the prediction cache, "
        "shared by all workers and replicas (else per worker).",
    )
    serve_max_in_flight: int = Field(
        default=64,
        ge=1,
        description="Model requests one worker holds at once; more get 503 with Retry-After.",
    )
    cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Predictions kept per worker (local) or per deployment (redis), keyed by "
        "version and input; 0 turns it off.",
    )
    cache_backend: Literal["local", "redis"] | None = Field(
        default=None,
        description="Prediction cache: `local` (LRU per worker) or `redis` (shared through "
        "redis_url); default: redis when redis_url is set, else local.",
    )
    cache_ttl_seconds: int = Field(
        default=86_400,
        ge=1,
        description="How long a prediction stays in the Redis cache.",
    )

    @model_validator(mode="after")
    def _auth_beyond_loopback(self) -> Settings:
        if self.serve_host not in LOOPBACK_HOSTS and self.require_api_key is False:
            raise ValueError(
                f"CONVEYOR_REQUIRE_API_KEY=false is refused with CONVEYOR_SERVE_HOST="
                f"{self.serve_host}: API keys are required beyond loopback"
            )
        return self

    @model_validator(mode="after")
    def _redis_cache_needs_redis(self) -> Settings:
        if self.cache_backend == "redis" and not self.redis_url:
            raise ValueError(
                "CONVEYOR_CACHE_BACKEND=redis needs CONVEYOR_REDIS_URL: set it, or use "
                "CONVEYOR_CACHE_BACKEND=local"
            )
        return self

    @property
    def cache_kind(self) -> Literal["local", "redis"]:
        """The prediction cache in use: the setting, else redis exactly when Redis is set."""
        if self.cache_backend is not None:
            return self.cache_backend
        return "redis" if self.redis_url else "local"

    @property
    def auth_required(self) -> bool:
        """Keys are required beyond loopback, and on loopback when the setting says so."""
        if self.require_api_key is not None:
            return self.require_api_key
        return self.serve_host not in LOOPBACK_HOSTS

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
