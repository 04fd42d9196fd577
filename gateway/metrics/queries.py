"""Read side for analysts: call lists with per-call aggregates, and everything about one call.

Portable SQL (SQLite and PostgreSQL) through SQLAlchemy Core; time arithmetic happens in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from gateway.metrics.tables import Call, CallEvent, InterruptionEvent, SpeechSegment, Turn, Usage

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """'2026-03-01', '2026-03-01T09:30', '2026-03-01T09:30+02:00' (naive = UTC), or '90m', '24h', '7d' ago."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    when = datetime.fromisoformat(value.strip())
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    edge: str | None = None
    end_reason: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class CallSummary:
    id: int
    call_id: str
    edge: str
    agent: str
    caller: str
    callee: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    duration_s: float | None
    interruptions: int
    backchannels: int
    false_interruptions: int
    turns: int
    avg_detection_delay_ms: float | None
    avg_response_latency_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, float):
                value = round(value, 3)
            out[key] = value
        return out


def list_calls(engine: Engine, flt: CallFilter) -> list[CallSummary]:
    e = InterruptionEvent
    events = (
        select(
            e.call_id,
            func.sum(case((e.kind == "interruption", 1), else_=0)).label("interruptions"),
            func.sum(case((e.kind == "backchannel", 1), else_=0)).label("backchannels"),
            func.sum(case((e.kind.in_(("false_interruption", "resumed")), 1), else_=0)).label(
                "false_interruptions"
            ),
            func.avg(case((e.kind.in_(("interruption", "backchannel")), e.detection_delay_ms))).label(
                "delay"
            ),
        )
        .group_by(e.call_id)
        .subquery()
    )
    turns = (
        select(Turn.call_id, func.count().label("turns"), func.avg(Turn.response_latency_ms).label("latency"))
        .group_by(Turn.call_id)
        .subquery()
    )
    query = (
        select(
            Call,
            func.coalesce(events.c.interruptions, 0),
            func.coalesce(events.c.backchannels, 0),
            func.coalesce(events.c.false_interruptions, 0),
            func.coalesce(turns.c.turns, 0),
            events.c.delay,
            turns.c.latency,
        )
        .outerjoin(events, events.c.call_id == Call.id)
        .outerjoin(turns, turns.c.call_id == Call.id)
        .order_by(Call.started_at.desc(), Call.id.desc())
    )
    if flt.since:
        query = query.where(Call.started_at >= flt.since)
    if flt.until:
        query = query.where(Call.started_at < flt.until)
    for column, wanted in ((Call.agent, flt.agent), (Call.edge, flt.edge), (Call.end_reason, flt.end_reason)):
        if wanted:
            query = query.where(column == wanted)
    if flt.limit:
        query = query.limit(flt.limit)
    out: list[CallSummary] = []
    with Session(engine) as session:
        for call, inter, back, false_, n_turns, delay, latency in session.execute(query):
            out.append(
                CallSummary(
                    id=call.id,
                    call_id=call.call_id,
                    edge=call.edge,
                    agent=call.agent,
                    caller=call.caller,
                    callee=call.callee,
                    started_at=call.started_at,
                    ended_at=call.ended_at,
                    end_reason=call.end_reason,
                    duration_s=(call.ended_at - call.started_at).total_seconds() if call.ended_at else None,
                    interruptions=int(inter),
                    backchannels=int(back),
                    false_interruptions=int(false_),
                    turns=int(n_turns),
                    avg_detection_delay_ms=float(delay) if delay is not None else None,
                    avg_response_latency_ms=float(latency) if latency is not None else None,
                )
            )
    return out


@dataclass
class CallDetail:
    call: Call
    events: list[InterruptionEvent] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    segments: list[SpeechSegment] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    call_events: list[CallEvent] = field(default_factory=list)  # DTMF digits


def load_call(engine: Engine, ident: str) -> CallDetail | None:
    """A call by `calls.id` (digits), `last` (the latest call), or by its edge call id (the latest
    call with that id)."""
    with Session(engine, expire_on_commit=False) as session:
        call = session.get(Call, int(ident)) if ident.isdigit() else None
        if ident == "last":
            call = session.scalars(
                select(Call).order_by(Call.started_at.desc(), Call.id.desc()).limit(1)
            ).first()
        if call is None:
            call = session.scalars(
                select(Call).where(Call.call_id == ident).order_by(Call.started_at.desc()).limit(1)
            ).first()
        if call is None:
            return None
        detail = CallDetail(call)
        detail.events = list(
            session.scalars(
                select(InterruptionEvent).where(InterruptionEvent.call_id == call.id).order_by("offset_s")
            )
        )
        detail.turns = list(
            session.scalars(select(Turn).where(Turn.call_id == call.id).order_by("turn_index"))
        )
        detail.segments = list(
            session.scalars(select(SpeechSegment).where(SpeechSegment.call_id == call.id).order_by("start_s"))
        )
        detail.usage = list(
            session.scalars(select(Usage).where(Usage.call_id == call.id).order_by("service"))
        )
        detail.call_events = list(
            session.scalars(select(CallEvent).where(CallEvent.call_id == call.id).order_by("offset_s"))
        )
        session.expunge_all()
    return detail


__all__ = ["CallDetail", "CallFilter", "CallSummary", "list_calls", "load_call", "parse_when"]
