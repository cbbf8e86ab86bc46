"""Serving: rollouts (canary percent, bake window, outcome) and per-worker heartbeats.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("previous", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("bake_seconds", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("bake_until", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_rollouts_lookup", "rollouts", ["deployment", "id"])
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.Column("active_version", sa.String(128), nullable=True),
        sa.Column("standby_version", sa.String(128), nullable=True),
        sa.Column("canary_version", sa.String(128), nullable=True),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
    )
    op.create_index("ix_worker_heartbeats_deployment", "worker_heartbeats", ["deployment"])


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    op.drop_table("rollouts")
