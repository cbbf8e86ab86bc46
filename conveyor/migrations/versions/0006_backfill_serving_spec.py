"""Old versions get their serving spec, derived leniently from their stored recipe.

Rows registered before 0004 have an empty ``serving_spec``; this fills it the way
``conveyor.serving_spec.serving_spec_of`` derives one when reading (only the keys the spec
needs are picked, the recipe is never re-validated). Downgrade leaves the filled specs: an
older reader derives the same values from the recipe anyway.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from conveyor.serving_spec import spec_from_recipe_dict

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_versions = sa.table(
    "model_versions",
    sa.column("version", sa.String),
    sa.column("recipe", sa.JSON),
    sa.column("serving_spec", sa.JSON),
)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # some drivers hand JSON back as text
        value = json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_versions.c.version, _versions.c.recipe, _versions.c.serving_spec)
    ).all()
    for version, recipe, spec in rows:
        if _as_dict(spec):
            continue
        filled = spec_from_recipe_dict(_as_dict(recipe)).as_record()
        connection.execute(
            _versions.update().where(_versions.c.version == version).values(serving_spec=filled)
        )


def downgrade() -> None:
    pass
