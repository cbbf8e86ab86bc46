"""The registry on a real SQLite file: versions, aliases with history, audit, API keys."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from conveyor.errors import ConveyorError, NotFoundError, RegistryConflictError
from conveyor.registry import Registry, VersionStatus, head_revision
from conveyor.registry.tables import Base

pytestmark = pytest.mark.unit

RECIPE: dict[str, Any] = {"name": "intents", "task": "classification"}


def _register(registry: Registry, deployment: str = "intents", **kwargs: Any) -> str:
    record = registry.register_version(
        deployment, task="classification", base_model="minilm", recipe=RECIPE, **kwargs
    )
    return record.version


def test_versions_are_numbered_per_deployment(registry: Registry) -> None:
    assert [_register(registry) for _ in range(3)] == ["intents:v1", "intents:v2", "intents:v3"]
    assert _register(registry, "spam") == "spam:v1"
    assert [r.version for r in registry.list_versions("intents")] == [
        "intents:v3",
        "intents:v2",
        "intents:v1",
    ]


def test_lineage_is_stored_and_read_back(registry: Registry, settings: Any) -> None:
    version = _register(
        registry,
        data_fingerprint="sha256:abc",
        artifact_uri="/models/intents/v1",
        metrics={"accuracy": 0.9},
        status=VersionStatus.TRAINED,
    )
    record = registry.resolve(version)
    assert record.data_fingerprint == "sha256:abc"
    assert record.artifact_uri == "/models/intents/v1"
    assert record.metrics == {"accuracy": 0.9}
    assert record.recipe == RECIPE
    assert record.status == "trained"
    assert record.created_by == settings.actor == "pytest@localhost"
    assert record.created_at.tzinfo is not None


def test_references_resolve(registry: Registry) -> None:
    first, second = _register(registry), _register(registry)
    registry.move_alias("intents", "production", first, reason="first")
    assert registry.resolve("intents:v2").version == second
    assert registry.resolve("intents:latest").version == second
    assert registry.resolve("intents@production").version == first
    with pytest.raises(NotFoundError, match="no version intents:v9"):
        registry.resolve("intents:v9")
    with pytest.raises(NotFoundError, match="alias 'candidate'"):
        registry.resolve("intents@candidate")
    with pytest.raises(NotFoundError, match="has no versions"):
        registry.resolve("ghost:latest")
    with pytest.raises(ConveyorError, match="not a version reference"):
        registry.resolve("intents v1")


def test_status_updates_merge_metrics_and_are_audited(registry: Registry) -> None:
    version = _register(registry, metrics={"loss": 1.0})
    updated = registry.update_version(
        version,
        status=VersionStatus.EVALUATED,
        metrics={"accuracy": 0.8},
        verdict={"passed": True},
        reason="gates passed",
    )
    assert updated.metrics == {"loss": 1.0, "accuracy": 0.8}
    assert updated.verdict == {"passed": True}
    entry = registry.audit_log("intents", limit=1)[0]
    assert (entry.action, entry.reason, entry.details) == (
        "version.status",
        "gates passed",
        {"from": "registered", "to": "evaluated"},
    )


def test_alias_moves_keep_full_history_and_audit(registry: Registry) -> None:
    v1, v2 = _register(registry), _register(registry)
    registry.move_alias("intents", "production", v1, reason="first model")
    registry.move_alias("intents", "production", v2, reason="better", expected=v1)
    registry.move_alias("intents", "production", v1, reason="rollback: errors", expected=v2)
    assert registry.alias("intents", "production") == v1
    history = registry.alias_history("intents", "production")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (None, v1, "first model"),
        (v1, v2, "better"),
        (v2, v1, "rollback: errors"),
    ]
    moved = [e for e in registry.audit_log("intents") if e.action == "alias.moved"]
    assert len(moved) == 3 and moved[0].reason == "rollback: errors"


def test_alias_compare_and_set_refuses_a_stale_expectation(registry: Registry) -> None:
    v1, v2 = _register(registry), _register(registry)
    registry.move_alias("intents", "production", v1, reason="first")
    with pytest.raises(RegistryConflictError, match="is intents:v1, not intents:v2"):
        registry.move_alias("intents", "production", v2, reason="race", expected=v2)
    assert registry.alias("intents", "production") == v1
    assert len(registry.alias_history("intents")) == 1


def test_alias_cannot_point_across_deployments_or_at_nothing_known(registry: Registry) -> None:
    other = _register(registry, "spam")
    with pytest.raises(ConveyorError, match="belongs to spam"):
        registry.move_alias("intents", "production", other, reason="x")
    with pytest.raises(NotFoundError):
        registry.move_alias("intents", "production", "intents:v7", reason="x")


def test_audit_log_and_alias_history_are_append_only(registry: Registry) -> None:
    registry.audit("note", deployment="intents", reason="hello")
    version = _register(registry)
    registry.move_alias("intents", "production", version, reason="x")
    for statement in (
        "UPDATE audit_log SET reason = 'forged'",
        "DELETE FROM audit_log",
        "UPDATE alias_history SET reason = 'forged'",
        "DELETE FROM alias_history",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with registry.engine.begin() as connection:
                connection.execute(text(statement))
    assert registry.audit_log("intents")[-1].reason == "hello"


def test_api_keys_are_hashed_verified_and_revoked(registry: Registry) -> None:
    record, plaintext = registry.create_api_key(
        "chatbot", ["intents"], rate_per_second=20, quota_per_day=100_000
    )
    assert plaintext.startswith("cvy_") and len(plaintext) > 40
    assert record.key_prefix == plaintext[:12]
    with registry.engine.connect() as connection:
        dump = " ".join(str(row) for row in connection.execute(text("SELECT * FROM api_keys")))
    assert plaintext not in dump
    verified = registry.verify_api_key(plaintext)
    assert verified is not None and verified.deployments == ["intents"]
    assert verified.rate_per_second == 20 and verified.quota_per_day == 100_000
    assert registry.verify_api_key(plaintext + "x") is None
    registry.revoke_api_keys("chatbot", reason="leaked")
    assert registry.verify_api_key(plaintext) is None
    assert registry.list_api_keys() == []
    assert [k.active for k in registry.list_api_keys(include_revoked=True)] == [False]
    actions = [e.action for e in registry.audit_log()]
    assert actions[:2] == ["key.revoked", "key.created"]
    with pytest.raises(NotFoundError, match="no active API keys"):
        registry.revoke_api_keys("chatbot")


def test_migrations_build_exactly_the_orm_schema(registry: Registry) -> None:
    with registry.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []


def test_reopening_a_migrated_registry_keeps_its_rows(registry: Registry, settings: Any) -> None:
    version = _register(registry)
    registry.close()
    again = Registry.from_url(settings.registry_url, actor="someone-else")
    assert again.resolve(version).created_by == "pytest@localhost"
    again.close()
