"""Versions carry a serving spec (what serving reads instead of the whole recipe) and the
SHA-256 over every file of their model folder.

Old rows get an empty spec here; ``conveyor.serving_spec`` derives theirs from the stored
recipe when it is read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("serving_spec", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("content_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("content_sha256")
        batch.drop_column("serving_spec")
