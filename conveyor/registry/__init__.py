"""The model registry: versions, aliases with history, audit log, API keys."""

from conveyor.registry.engine import create_registry_engine, masked_url, normalize_url
from conveyor.registry.migrate import head_revision, upgrade_to_head
from conveyor.registry.records import (
    AliasMove,
    ApiKeyRecord,
    AuditRecord,
    RolloutRecord,
    RolloutState,
    VersionRecord,
    VersionStatus,
    WorkerRecord,
)
from conveyor.registry.store import API_KEY_PREFIX, Registry, hash_api_key

__all__ = [
    "API_KEY_PREFIX",
    "AliasMove",
    "ApiKeyRecord",
    "AuditRecord",
    "Registry",
    "RolloutRecord",
    "RolloutState",
    "VersionRecord",
    "VersionStatus",
    "WorkerRecord",
    "create_registry_engine",
    "hash_api_key",
    "head_revision",
    "masked_url",
    "normalize_url",
    "open_registry",
    "upgrade_to_head",
]

from conveyor.settings import Settings  # noqa: E402


def open_registry(settings: Settings) -> Registry:
    """The registry the settings point at, migrated to the newest schema."""
    return Registry.from_url(settings.registry_url, actor=settings.actor)
