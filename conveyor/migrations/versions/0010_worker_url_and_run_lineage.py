"""A worker's heartbeat names the URL clients reach it at, so a promotion can say where the
version it moved is served (``http://127.0.0.1:3000``); a version's lineage names the
orchestrator run that made it (its Prefect flow run's id and URL). Nullable: older rows,
workers started without ``conveyor serve``'s port, and versions made outside a flow name none.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("url", sa.String(512), nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("lineage", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("lineage")
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("url")
