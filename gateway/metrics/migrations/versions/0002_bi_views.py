"""SQL views for BI tools: v_interruptions, v_call_summary, v_turn_latencies (see docs/sql-views.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

A later migration that alters a table these views read must drop the views first and recreate them
(SQLite rebuilds altered tables, and PostgreSQL refuses to alter columns a view depends on).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V_INTERRUPTIONS = """
CREATE VIEW v_interruptions AS
SELECT
    e.id,
    e.call_id,
    c.call_id AS edge_call_id,
    c.edge,
    c.agent,
    c.caller,
    c.callee,
    e.occurred_at,
    e.offset_s,
    e.onset_s,
    e.kind,
    e.mode,
    e.probability,
    e.detection_delay_ms,
    e.prediction_duration_ms,
    e.total_duration_ms,
    e.requests,
    e.overlap_s,
    e.agent_action,
    e.agent_text_heard
FROM interruption_events e
JOIN calls c ON c.id = e.call_id
"""

V_CALL_SUMMARY = """
CREATE VIEW v_call_summary AS
SELECT
    c.id AS call_id,
    c.call_id AS edge_call_id,
    c.edge,
    c.agent,
    c.caller,
    c.callee,
    c.codec,
    c.started_at,
    c.answered_at,
    c.ended_at,
    c.end_reason,
    {duration} AS duration_s,
    COALESCE(e.interruptions, 0) AS interruptions,
    COALESCE(e.backchannels, 0) AS backchannels,
    COALESCE(e.false_interruptions, 0) AS false_interruptions,
    COALESCE(e.resumed, 0) AS resumed,
    e.avg_detection_delay_ms,
    COALESCE(t.turns, 0) AS turns,
    t.avg_response_latency_ms,
    t.max_response_latency_ms
FROM calls c
LEFT JOIN (
    SELECT
        call_id,
        SUM(CASE WHEN kind = 'interruption' THEN 1 ELSE 0 END) AS interruptions,
        SUM(CASE WHEN kind = 'backchannel' THEN 1 ELSE 0 END) AS backchannels,
        SUM(CASE WHEN kind IN ('false_interruption', 'resumed') THEN 1 ELSE 0 END) AS false_interruptions,
        SUM(CASE WHEN kind = 'resumed' THEN 1 ELSE 0 END) AS resumed,
        AVG(CASE WHEN kind IN ('interruption', 'backchannel') THEN detection_delay_ms END)
            AS avg_detection_delay_ms
    FROM interruption_events
    GROUP BY call_id
) e ON e.call_id = c.id
LEFT JOIN (
    SELECT
        call_id,
        COUNT(*) AS turns,
        AVG(response_latency_ms) AS avg_response_latency_ms,
        MAX(response_latency_ms) AS max_response_latency_ms
    FROM turns
    GROUP BY call_id
) t ON t.call_id = c.id
"""

V_TURN_LATENCIES = """
CREATE VIEW v_turn_latencies AS
SELECT
    t.id,
    t.call_id,
    c.edge,
    c.agent,
    t.turn_index,
    t.occurred_at,
    t.offset_s,
    t.interrupted_agent,
    t.eou_delay_ms,
    t.stt_final_latency_ms,
    t.llm_ttft_ms,
    t.tts_first_audio_ms,
    t.response_latency_ms
FROM turns t
JOIN calls c ON c.id = t.call_id
"""

DURATION = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM (c.ended_at - c.started_at)) AS DOUBLE PRECISION)",
    "sqlite": "(julianday(c.ended_at) - julianday(c.started_at)) * 86400.0",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(V_INTERRUPTIONS)
    op.execute(V_CALL_SUMMARY.format(duration=DURATION[dialect]))
    op.execute(V_TURN_LATENCIES)


def downgrade() -> None:
    for view in ("v_turn_latencies", "v_call_summary", "v_interruptions"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
