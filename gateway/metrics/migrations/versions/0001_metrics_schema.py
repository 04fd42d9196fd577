"""Metrics schema: calls, interruption_events, turns, speech_segments, usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("edge", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("caller", sa.String(length=255), nullable=False),
        sa.Column("callee", sa.String(length=255), nullable=False),
        sa.Column("codec", sa.String(length=32), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("uid", name=op.f("uq_calls_uid")),
    )
    op.create_index(op.f("ix_calls_agent"), "calls", ["agent"])
    op.create_index(op.f("ix_calls_call_id"), "calls", ["call_id"])
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])

    op.create_table(
        "interruption_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_s", sa.Double(), nullable=False),
        sa.Column("onset_s", sa.Double(), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("probability", sa.Double(), nullable=True),
        sa.Column("detection_delay_ms", sa.Double(), nullable=True),
        sa.Column("prediction_duration_ms", sa.Double(), nullable=True),
        sa.Column("total_duration_ms", sa.Double(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("overlap_s", sa.Double(), nullable=True),
        sa.Column("agent_action", sa.String(length=16), nullable=True),
        sa.Column("agent_text_heard", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_interruption_events_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interruption_events")),
        sa.UniqueConstraint("uid", name=op.f("uq_interruption_events_uid")),
    )
    op.create_index(
        op.f("ix_interruption_events_call_id_offset_s"), "interruption_events", ["call_id", "offset_s"]
    )
    op.create_index(op.f("ix_interruption_events_occurred_at"), "interruption_events", ["occurred_at"])

    op.create_table(
        "speech_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(length=8), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_speech_segments_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speech_segments")),
        sa.UniqueConstraint("uid", name=op.f("uq_speech_segments_uid")),
    )
    op.create_index(op.f("ix_speech_segments_call_id_start_s"), "speech_segments", ["call_id", "start_s"])

    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_s", sa.Double(), nullable=False),
        sa.Column("user_start_s", sa.Double(), nullable=True),
        sa.Column("user_end_s", sa.Double(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("interrupted_agent", sa.Boolean(), nullable=False),
        sa.Column("eou_probability", sa.Double(), nullable=True),
        sa.Column("eou_delay_ms", sa.Double(), nullable=True),
        sa.Column("stt_final_latency_ms", sa.Double(), nullable=True),
        sa.Column("llm_ttft_ms", sa.Double(), nullable=True),
        sa.Column("tts_first_audio_ms", sa.Double(), nullable=True),
        sa.Column("response_latency_ms", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_turns_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.UniqueConstraint("uid", name=op.f("uq_turns_uid")),
    )
    op.create_index(op.f("ix_turns_call_id_turn_index"), "turns", ["call_id", "turn_index"])
    op.create_index(op.f("ix_turns_occurred_at"), "turns", ["occurred_at"])

    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("audio_s", sa.Double(), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_usage_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage")),
        sa.UniqueConstraint("uid", name=op.f("uq_usage_uid")),
    )
    op.create_index(op.f("ix_usage_call_id"), "usage", ["call_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_call_id"), table_name="usage")

    op.drop_table("usage")
    op.drop_index(op.f("ix_turns_occurred_at"), table_name="turns")
    op.drop_index(op.f("ix_turns_call_id_turn_index"), table_name="turns")

    op.drop_table("turns")
    op.drop_index(op.f("ix_speech_segments_call_id_start_s"), table_name="speech_segments")

    op.drop_table("speech_segments")
    op.drop_index(op.f("ix_interruption_events_occurred_at"), table_name="interruption_events")
    op.drop_index(op.f("ix_interruption_events_call_id_offset_s"), table_name="interruption_events")

    op.drop_table("interruption_events")
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_call_id"), table_name="calls")
    op.drop_index(op.f("ix_calls_agent"), table_name="calls")

    op.drop_table("calls")
