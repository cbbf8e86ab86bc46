"""A key may be allowed to pin a version (``model: deployment:vN``); by default it may not.

Pinning chooses which version answers, so it is a permission of the key: an ordinary key
calls the deployment and takes what the canary split gives its app.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("may_pin_versions", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("may_pin_versions")
