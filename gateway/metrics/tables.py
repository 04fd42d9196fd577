"""The metrics schema as SQLAlchemy 2 typed models.

Table and column names are a contract with analysts (docs/design.md, "Database"); change them only with a
new Alembic migration in `gateway/metrics/migrations/versions/`. `tests/test_migrations.py` checks
that the migrations build exactly this schema.

Every row the writer inserts carries `uid`, an idempotency key generated when the record was emitted:
a record replayed from the spool after an ambiguous failure hits the unique constraint and is ignored
(`ON CONFLICT DO NOTHING`), so each event lands exactly once.

Times are stored in UTC. `offset_s` columns are on the engine's timeline: seconds since the call's
audio began (its `answered_at`, or `started_at` when no answer was recorded), the same `t` that
`gateway replay` prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite has no time zones of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: metrics times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text, e.g. from a view
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[str] = mapped_column(String(255), index=True)  # SIP Call-ID or the edge's id
    edge: Mapped[str] = mapped_column(String(16))  # sip | webrtc | mediastream | replay
    agent: Mapped[str] = mapped_column(String(128), index=True)
    caller: Mapped[str] = mapped_column(String(255), default="")
    callee: Mapped[str] = mapped_column(String(255), default="")
    codec: Mapped[str] = mapped_column(String(32), default="")
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # caller_hangup | agent_hangup | rtp_timeout | max_duration | shutdown | error | gateway_restart | ...
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Which gateway process owned the call: on start it closes only its own calls left open by a crash.
    instance: Mapped[str] = mapped_column(String(128), default="")


class InterruptionEvent(Base):
    """One row per overlap verdict (interruption, backchannel) and per false-interruption outcome."""

    __tablename__ = "interruption_events"
    __table_args__ = (Index(None, "call_id", "offset_s"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    offset_s: Mapped[float] = mapped_column(Double)  # when the verdict was made
    onset_s: Mapped[float | None] = mapped_column(Double)  # when the caller started to overlap
    kind: Mapped[str] = mapped_column(String(24))  # interruption | backchannel | false_interruption | resumed
    mode: Mapped[str] = mapped_column(String(16))  # adaptive | vad | fallback
    probability: Mapped[float | None] = mapped_column(Double)
    detection_delay_ms: Mapped[float | None] = mapped_column(Double)  # onset -> verdict
    prediction_duration_ms: Mapped[float | None] = mapped_column(Double)  # model inference time
    total_duration_ms: Mapped[float | None] = mapped_column(Double)  # detector round trip
    requests: Mapped[int] = mapped_column(Integer, default=0)  # detector queries for this overlap
    overlap_s: Mapped[float | None] = mapped_column(
        Double
    )  # both talking, onset -> agent yielded / caller stopped
    # What the agent ended up doing: paused | stopped | resumed | continued (backchannel).
    agent_action: Mapped[str | None] = mapped_column(String(16))
    agent_text_heard: Mapped[str | None] = mapped_column(
        Text
    )  # what the caller heard before the agent yielded


class Turn(Base):
    """One caller turn (an end-of-turn decision) and the latencies of the agent's response to it."""

    __tablename__ = "turns"
    __table_args__ = (Index(None, "call_id", "turn_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    turn_index: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the call
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    offset_s: Mapped[float] = mapped_column(Double)  # end-of-turn decision
    user_start_s: Mapped[float | None] = mapped_column(Double)
    user_end_s: Mapped[float | None] = mapped_column(Double)
    transcript: Mapped[str] = mapped_column(Text, default="")
    interrupted_agent: Mapped[bool] = mapped_column(default=False)
    eou_probability: Mapped[float | None] = mapped_column(Double)
    eou_delay_ms: Mapped[float | None] = mapped_column(Double)  # end of speech -> end-of-turn decision
    stt_final_latency_ms: Mapped[float | None] = mapped_column(Double)  # end of speech -> final transcript
    llm_ttft_ms: Mapped[float | None] = mapped_column(Double)  # LLM request -> first token
    tts_first_audio_ms: Mapped[float | None] = mapped_column(Double)  # TTS request -> first audio
    response_latency_ms: Mapped[float | None] = mapped_column(Double)  # end of speech -> first agent audio


class SpeechSegment(Base):
    """Who spoke when: one row per caller or agent utterance, as the engine observed it."""

    __tablename__ = "speech_segments"
    __table_args__ = (Index(None, "call_id", "start_s"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    speaker: Mapped[str] = mapped_column(String(8))  # caller | agent
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double)


class Usage(Base):
    """Per call and provider: what the call consumed (one row per service/provider/model)."""

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(16))  # stt | llm | tts | bargein | vad
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128), default="")
    requests: Mapped[int] = mapped_column(Integer, default=0)
    audio_s: Mapped[float] = mapped_column(Double, default=0.0)
    characters: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)


class CallEvent(Base):
    """Other things that happened in a call, on its timeline: DTMF digits (kind `dtmf`, `value` the
    digit, `detail` how it came: rfc4733, sip_info, page)."""

    __tablename__ = "call_events"
    __table_args__ = (Index(None, "call_id", "offset_s"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    offset_s: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(24))  # dtmf
    value: Mapped[str] = mapped_column(String(64), default="")  # the digit
    detail: Mapped[str] = mapped_column(String(255), default="")


class RefusedAttempt(Base):
    """A call attempt an edge refused or could not start (no `calls` row exists for it)."""

    __tablename__ = "call_attempts_refused"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    edge: Mapped[str] = mapped_column(String(16))  # sip | webrtc | mediastream
    # codec | media_address_family | auth | rate_limit | capacity | routing | bad_request | media | error
    reason: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[int | None] = mapped_column(Integer)  # SIP / HTTP status or WebSocket close code sent
    detail: Mapped[str] = mapped_column(Text, default="")
    caller: Mapped[str] = mapped_column(String(255), default="")
    callee: Mapped[str] = mapped_column(String(255), default="")
    agent: Mapped[str] = mapped_column(String(128), default="")
    edge_call_id: Mapped[str] = mapped_column(String(255), default="")  # SIP Call-ID, carrier call id
    instance: Mapped[str] = mapped_column(String(128), default="")


TABLES_BY_NAME: dict[str, type[Base]] = {
    model.__tablename__: model
    for model in (Call, InterruptionEvent, Turn, SpeechSegment, Usage, CallEvent, RefusedAttempt)
}

__all__ = [
    "TABLES_BY_NAME",
    "Base",
    "Call",
    "CallEvent",
    "InterruptionEvent",
    "RefusedAttempt",
    "SpeechSegment",
    "Turn",
    "UTCDateTime",
    "Usage",
    "utc_now",
]
