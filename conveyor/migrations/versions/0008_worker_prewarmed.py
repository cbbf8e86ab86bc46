"""A worker's heartbeat names the version it holds warm before traffic moves to it.

A promotion first points the ``prewarm`` alias at the candidate; each worker loads and
smoke-checks it beside what it serves and reports it here, and only then does the
production alias move (a pointer swap on every worker). Nullable: older rows name none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("prewarmed_version", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("prewarmed_version")
