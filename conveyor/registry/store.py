"""The registry facade: one typed class over the parts, each part a module by concern.

Versions (``_versions``), aliases (``_aliases``), the audit log (``_audit``), API keys and
usage (``_keys``), rollouts (``_rollouts``) and serving workers (``_workers``). Each public
method is one short transaction (``_store``), and writes that lose a race are retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import EllipsisType
from typing import Any

from sqlalchemy.engine import Engine

from conveyor.registry import _aliases, _audit, _keys, _rollouts, _versions, _workers
from conveyor.registry._keys import API_KEY_PREFIX, hash_api_key
from conveyor.registry._store import Store
from conveyor.registry.engine import create_registry_engine
from conveyor.registry.migrate import upgrade_to_head
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

__all__ = ["API_KEY_PREFIX", "Registry", "hash_api_key"]


class Registry:
    """Typed access to the registry database. Open with :meth:`from_url`."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor
        self._store = Store(engine, actor)

    @classmethod
    def from_url(cls, url: str, actor: str, migrate: bool = True) -> Registry:
        engine = create_registry_engine(url)
        if migrate:
            upgrade_to_head(engine)
        return cls(engine, actor)

    def close(self) -> None:
        self.engine.dispose()

    # -- versions ---------------------------------------------------------------------------

    def register_version(
        self,
        deployment: str,
        *,
        task: str,
        base_model: str,
        recipe: dict[str, Any],
        data_fingerprint: str | None = None,
        artifact_uri: str | None = None,
        metrics: dict[str, Any] | None = None,
        status: VersionStatus = VersionStatus.REGISTERED,
        reason: str = "",
        serving_spec: dict[str, Any] | None = None,
        content_sha256: str | None = None,
    ) -> VersionRecord:
        """Add a version with the next number of its deployment (``name:vN``)."""
        facts = {
            "task": task,
            "base_model": base_model,
            "recipe": recipe,
            "data_fingerprint": data_fingerprint,
            "artifact_uri": artifact_uri,
            "metrics": metrics or {},
            "verdict": None,
            "serving_spec": serving_spec or {},
            "content_sha256": content_sha256,
        }
        return _versions.register_version(self._store, deployment, facts, status, reason)

    def resolve(self, ref: str) -> VersionRecord:
        """``name:vN``, ``name:latest`` or ``name@alias`` to a version."""
        return _versions.resolve(self._store, ref)

    def has_version(self, version: str) -> bool:
        return _versions.version_exists(self._store, version)

    def get_version(self, version: str) -> VersionRecord:
        return self.resolve(version)

    def list_versions(
        self, deployment: str | None = None, limit: int | None = None
    ) -> list[VersionRecord]:
        return _versions.list_versions(self._store, deployment, limit)

    def update_version(
        self,
        version: str,
        *,
        status: VersionStatus | None = None,
        metrics: dict[str, Any] | None = None,
        verdict: dict[str, Any] | None = None,
        artifact_uri: str | None = None,
        reason: str = "",
        serving_spec: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """Record what a stage learnt about a version; a status change is audited."""
        return _versions.update_version(
            self._store,
            version,
            status=status,
            metrics=metrics,
            verdict=verdict,
            artifact_uri=artifact_uri,
            serving_spec=serving_spec,
            reason=reason,
            lineage=lineage,
        )

    # -- aliases ----------------------------------------------------------------------------

    def alias(self, deployment: str, alias: str) -> str | None:
        return _aliases.alias(self._store, deployment, alias)

    def aliases(self, deployment: str) -> dict[str, str | None]:
        return _aliases.aliases(self._store, deployment)

    def move_alias(
        self,
        deployment: str,
        alias: str,
        to_version: str | None,
        *,
        reason: str,
        expected: str | None | EllipsisType = ...,
    ) -> AliasMove:
        """Point ``alias`` at ``to_version`` (None clears it), with history and audit.

        ``expected``: the version the caller believes is current; if someone moved the
        alias meanwhile, nothing changes and RegistryConflictError says who won.
        """
        return _aliases.move_alias(
            self._store, deployment, alias, to_version, reason=reason, expected=expected
        )

    def alias_history(self, deployment: str, alias: str | None = None) -> list[AliasMove]:
        return _aliases.alias_history(self._store, deployment, alias)

    # -- audit ------------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        deployment: str | None = None,
        version: str | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log."""
        _audit.audit(self._store, action, deployment, version, reason, details)

    def audit_log(
        self, deployment: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        return _audit.audit_log(self._store, deployment, limit)

    # -- API keys and usage -----------------------------------------------------------------

    def create_api_key(
        self,
        app: str,
        deployments: Sequence[str],
        *,
        rate_per_second: float | None = None,
        quota_per_day: int | None = None,
        tokens_per_minute: int | None = None,
        tokens_per_day: int | None = None,
        may_pin_versions: bool = False,
    ) -> tuple[ApiKeyRecord, str]:
        """Make a key for ``app``; the plaintext is returned once and never stored."""
        limits = _keys.KeyLimits(
            rate_per_second, quota_per_day, tokens_per_minute, tokens_per_day, may_pin_versions
        )
        return _keys.create_api_key(self._store, app, deployments, limits)

    def list_api_keys(self, include_revoked: bool = False) -> list[ApiKeyRecord]:
        return _keys.list_api_keys(self._store, include_revoked)

    def revoke_api_keys(self, app: str, reason: str = "") -> list[ApiKeyRecord]:
        """Revoke every active key of ``app``; NotFoundError if it has none."""
        return _keys.revoke_api_keys(self._store, app, reason)

    def verify_api_key(self, plaintext: str) -> ApiKeyRecord | None:
        """The active key matching ``plaintext``, or None."""
        return _keys.verify_api_key(self._store, plaintext)

    def add_usage(self, day: str, counts: dict[str, tuple[int, int]]) -> None:
        """Add ``{app: (requests, refused)}`` to the day's usage (workers flush their counts)."""
        _keys.add_usage(self._store, day, counts)

    def usage(self, day: str) -> dict[str, tuple[int, int]]:
        """``{app: (requests, refused)}`` on one UTC day (``YYYY-MM-DD``)."""
        return _keys.usage(self._store, day)

    # -- rollouts and serving workers -------------------------------------------------------

    def start_rollout(
        self,
        deployment: str,
        version: str,
        *,
        kind: str,
        reason: str,
        expected: str | None,
        canary_percent: float = 100.0,
        bake_seconds: float = 0.0,
        details: dict[str, Any] | None = None,
    ) -> RolloutRecord:
        """Move ``production`` to ``version`` (compare-and-set) and open a rollout, atomically.

        A canary (``0 < canary_percent < 100`` and ``bake_seconds > 0``) starts baking: the
        workers split traffic until :meth:`finish_rollout`. Open rollouts are superseded.
        """
        return _rollouts.start_rollout(
            self._store,
            deployment,
            version,
            kind=kind,
            reason=reason,
            expected=expected,
            canary_percent=canary_percent,
            bake_seconds=bake_seconds,
            details=details,
        )

    def finish_rollout(
        self,
        rollout_id: int,
        state: RolloutState,
        *,
        reason: str,
        details: dict[str, Any] | None = None,
        revert: bool = False,
    ) -> RolloutRecord:
        """Close an open rollout (compare-and-set on its state); ``revert`` moves the alias back.

        RegistryConflictError when someone closed it first (nothing changes: the winner's
        record stands), or when ``revert`` finds the alias moved meanwhile.
        """
        return _rollouts.finish_rollout(
            self._store, rollout_id, state, reason=reason, details=details, revert=revert
        )

    def rollouts(self, deployment: str, limit: int | None = None) -> list[RolloutRecord]:
        """Newest first."""
        return _rollouts.rollouts(self._store, deployment, limit)

    def serving_target(self, deployment: str) -> tuple[str | None, RolloutRecord | None]:
        """The ``production`` version and the newest rollout, read in one transaction."""
        return _rollouts.serving_target(self._store, deployment)

    def heartbeat(self, record: WorkerRecord) -> None:
        """Insert or refresh one worker's row (what it serves, its figures)."""
        _workers.heartbeat(self._store, record)

    def workers(self, deployment: str | None = None) -> list[WorkerRecord]:
        return _workers.workers(self._store, deployment)

    def forget_worker(self, worker: str) -> None:
        _workers.forget_worker(self._store, worker)
