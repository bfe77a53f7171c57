"""telegram adapter: chats, seen update ids, message ids for /forget, pending messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tg_chats",
        sa.Column("user_key", sa.String(64), primary_key=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("language", sa.String(2), nullable=True),
        sa.Column("last_language", sa.String(2), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
    )
    op.create_table(
        "tg_updates",
        sa.Column("update_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_at", TZ, nullable=False),
    )
    op.create_index("ix_tg_updates_claimed_at", "tg_updates", ["claimed_at"])
    op.create_table(
        "tg_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", TZ, nullable=False),
    )
    op.create_index("ix_tg_messages_user_key", "tg_messages", ["user_key"])
    op.create_index("ix_tg_messages_sent_at", "tg_messages", ["sent_at"])
    op.create_table(
        "tg_pending",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("message_key", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_tg_pending_user_key", "tg_pending", ["user_key"])


def downgrade() -> None:
    for table in ("tg_pending", "tg_messages", "tg_updates", "tg_chats"):
        op.drop_table(table)
