"""call_events (DTMF digits on a call's timeline) and call_attempts_refused (what edges refused).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_s", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_events_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
        sa.UniqueConstraint("uid", name=op.f("uq_call_events_uid")),
    )
    op.create_index(op.f("ix_call_events_call_id_offset_s"), "call_events", ["call_id", "offset_s"])
    op.create_index(op.f("ix_call_events_occurred_at"), "call_events", ["occurred_at"])

    op.create_table(
        "call_attempts_refused",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edge", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("caller", sa.String(length=255), nullable=False),
        sa.Column("callee", sa.String(length=255), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("edge_call_id", sa.String(length=255), nullable=False),
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_attempts_refused")),
        sa.UniqueConstraint("uid", name=op.f("uq_call_attempts_refused_uid")),
    )
    op.create_index(op.f("ix_call_attempts_refused_occurred_at"), "call_attempts_refused", ["occurred_at"])
    op.create_index(op.f("ix_call_attempts_refused_reason"), "call_attempts_refused", ["reason"])


def downgrade() -> None:
    op.drop_table("call_attempts_refused")
    op.drop_table("call_events")
