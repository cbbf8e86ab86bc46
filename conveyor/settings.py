"""One settings object for the whole platform, read from the environment.

Nothing here touches the disk or the environment at import time: call
:func:`load_settings` where a process starts (the CLI, a flow, the service). Every
``CONVEYOR_*`` variable conveyor reads is a field here; one it does not know (a misspelling)
is reported with a warning naming the closest known variable.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ENV_PREFIX",
    "LOOPBACK_HOSTS",
    "OTHER_VARIABLES",
    "RETIRED_VARIABLES",
    "Settings",
    "known_variables",
    "load_settings",
    "unknown_variables",
]

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ENV_PREFIX = "CONVEYOR_"
# Read outside the platform itself (not settings): named here so they are not reported.
OTHER_VARIABLES = {
    "CONVEYOR_TEST_PG_URL": "the Postgres URL of the registry concurrency test (tests only)",
    "CONVEYOR_SCREENSHOTS": "where the browser test keeps its screenshots (tests and CI only)",
    "CONVEYOR_FAULTS_OUT": "where the fault suite writes its table's rows (tests and CI only)",
}
# No longer read, with what replaced each.
RETIRED_VARIABLES = {
    "CONVEYOR_MAX_BATCH": "the recipe's serving.batching.max_batch_size (per version)",
}
_reported: set[str] = set()


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

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

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
    cache_secret: str | None = Field(
        default=None,
        description="Key that signs every answer in the Redis cache (an answer whose "
        "signature fails is a miss); default: a random key kept in the home "
        "(`cache.secret`, 0600). Set the same one on every replica, from a Secret.",
    )

    serve_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes of one `conveyor serve` (its `--workers` sets it).",
    )
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="Torch threads per serving worker; 0: torch's default "
        "(`conveyor serve` sets cores / workers).",
    )
    poll_seconds: float = Field(
        default=0.2,
        gt=0,
        description="How often a serving worker reads its production alias and rollouts.",
    )
    serve_deployment: str | None = Field(
        default=None,
        description="Process-internal: the deployment a serving worker follows (several, "
        "comma-separated, for a server of many on one base), set by `conveyor serve` for "
        "its own workers.",
    )
    max_loaded_adapters: int | None = Field(
        default=None,
        ge=1,
        description="LoRA adapters one serving worker keeps loaded at once; the least "
        "recently used idle one is evicted to load another (`conveyor serve "
        "--max-loaded-adapters`); default: no bound.",
    )
    adapter_memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="Megabytes of LoRA adapter weights one serving worker keeps loaded "
        "(`--adapter-memory-mb`); one adapter over it is refused; default: no bound.",
    )
    adapter_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a request for an evicted adapter waits for its load (and for "
        "room) before a 503 with Retry-After.",
    )
    serve_url: str | None = Field(
        default=None,
        description="Process-internal: where clients reach a serving worker "
        "(`http://127.0.0.1:3000`), set by `conveyor serve`; workers publish it in their "
        "heartbeats so a promotion and `conveyor status` name the endpoint.",
    )
    bento_model: str | None = Field(
        default=None,
        description="Overrides the model a packaged Bento serves, which `conveyor package` "
        "pins in the Bento's source (serving/bento_pin.json).",
    )

    def served_deployments(self) -> list[str]:
        """The deployments a serving worker follows (``serve_deployment``, comma-separated)."""
        names = (self.serve_deployment or "").split(",")
        return [name.strip() for name in names if name.strip()]

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

    def cache_signing_key(self) -> bytes:
        """``cache_secret``, else the home's own random key (created 0600 on first use)."""
        if self.cache_secret:
            return self.cache_secret.encode()
        path = self.home / "cache.secret"
        if not path.is_file():  # written whole, then linked in: a reader never sees half
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".cache.secret.{os.getpid()}")
            descriptor = os.open(draft, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32))
            try:
                os.link(draft, path)
            except FileExistsError:  # another worker linked its key first: use theirs
                pass
            finally:
                draft.unlink()
        return path.read_text().strip().encode()

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


def known_variables() -> frozenset[str]:
    """Every ``CONVEYOR_*`` name conveyor reads: the settings' fields and OTHER_VARIABLES."""
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    return frozenset(fields | set(OTHER_VARIABLES))


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """``CONVEYOR_*`` names in ``environ`` that conveyor does not read, each with the closest
    known name (None when nothing is close)."""
    known = known_variables()
    unknown = sorted(
        n for n in environ if n.upper().startswith(ENV_PREFIX) and n.upper() not in known
    )
    return {
        name: next(iter(difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)), None)
        for name in unknown
    }


def _report_unknown(environ: Mapping[str, str]) -> None:
    """A warning per unknown name, once per process.

    A warning, not an error: during a rolling update a newer release's variable reaches
    older replicas, and one unknown name must not take a serving worker down; a misspelling
    still shows in every process's log, with the name it was probably meant to be.
    """
    for name, closest in unknown_variables(environ).items():
        if name in _reported:
            continue
        _reported.add(name)
        if name.upper() in RETIRED_VARIABLES:
            hint = f"; it was replaced by {RETIRED_VARIABLES[name.upper()]}"
        else:
            hint = f"; did you mean {closest}?" if closest else ""
        log.warning("%s is not a conveyor setting and is ignored%s", name, hint)


def load_settings() -> Settings:
    """Read the settings from the environment (a fresh object each call)."""
    settings = Settings()
    _report_unknown(os.environ)
    return settings
