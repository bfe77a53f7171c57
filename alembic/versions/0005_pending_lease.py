"""pending messages: a lease, so one replica at a time answers a kept message

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:55:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tg_pending") as batch:
        batch.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tg_pending") as batch:
        batch.drop_column("leased_until")
