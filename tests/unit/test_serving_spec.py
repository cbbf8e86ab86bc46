"""The serving spec: built from a recipe, read leniently, backfilled for old rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from conveyor.recipe.schema import Recipe
from conveyor.registry import Registry, upgrade_to_head
from conveyor.registry.migrate import _alembic_config
from conveyor.serving_spec import ServingSpec, serving_spec_of, spec_from_recipe_dict

pytestmark = pytest.mark.unit

RAW: dict[str, Any] = {
    "name": "intents",
    "task": "classification",
    "data": {"train": "t.jsonl", "validation": "v.jsonl", "test": "t.jsonl"},
    "model": {"base": "minilm", "max_length": 48},
    "serving": {
        "backend": "torch",
        "canary_percent": 25,
        "batching": {"enabled": False, "max_batch_size": 8},
        "rollback": {"max_error_rate": 0.01, "min_requests": 5},
        "monitor": {"max_label_psi": 0.3},
    },
}


def test_the_spec_holds_what_serving_reads_of_the_recipe() -> None:
    spec = ServingSpec.from_recipe(Recipe.model_validate(RAW))
    assert spec.spec_version == 1 and spec.backend == "torch" and spec.max_length == 48
    assert spec.canary_percent == 25 and spec.bake_seconds == 60
    assert (spec.batching, spec.max_batch_size) == (False, 8)
    assert spec.rollback.max_error_rate == 0.01 and spec.rollback.min_requests == 5
    assert spec.rollback.max_p99_latency_ms == 1000
    assert spec.monitor.max_label_psi == 0.3 and spec.monitor.min_requests == 200
    assert ServingSpec.model_validate(spec.as_record()) == spec


def test_a_newer_writer_never_breaks_this_reader() -> None:
    stored = {**ServingSpec().as_record(), "spec_version": 2, "kv_cache_mb": 512}
    stored["rollback"] = {**stored["rollback"], "max_ttft_ms": 300}
    spec = ServingSpec.model_validate(stored)
    assert spec.spec_version == 2 and spec.rollback.min_requests == 20


def test_old_rows_derive_it_from_a_recipe_the_schema_would_now_refuse() -> None:
    recipe = {**RAW, "retired_section": {"x": 1}}
    recipe["serving"] = {**RAW["serving"], "shadow_percent": 5}
    with pytest.raises(ValueError):
        Recipe.model_validate(recipe)
    spec = spec_from_recipe_dict(recipe)
    assert spec.canary_percent == 25 and spec.max_length == 48
    assert spec_from_recipe_dict({}) == ServingSpec()


def test_serving_spec_of_prefers_the_stored_spec(registry: Registry) -> None:
    stored = ServingSpec(canary_percent=50).as_record()
    new = registry.register_version(
        "intents", task="classification", base_model="m", recipe=RAW, serving_spec=stored
    )
    old = registry.register_version("intents", task="classification", base_model="m", recipe=RAW)
    assert serving_spec_of(new).canary_percent == 50
    assert serving_spec_of(old).canary_percent == 25


def test_migration_backfills_the_spec_of_old_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            text(
                "INSERT INTO model_versions (version, deployment, number, task, base_model,"
                " recipe, metrics, status, created_at, created_by) VALUES ('intents:v1',"
                " 'intents', 1, 'classification', 'm', :recipe, '{}', 'serving',"
                " '2026-01-01 00:00:00', 'old')"
            ),
            {"recipe": '{"serving": {"canary_percent": 30, "rollback": {"min_requests": 7}}}'},
        )
    upgrade_to_head(engine)
    engine.dispose()
    registry = Registry.from_url(url, actor="pytest")
    record = registry.resolve("intents:v1")
    registry.close()
    assert record.serving_spec["canary_percent"] == 30
    assert record.serving_spec["rollback"]["min_requests"] == 7
    assert record.serving_spec["spec_version"] == 1
