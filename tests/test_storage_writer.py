"""The metrics writer against SQLite and PostgreSQL: batching, idempotency, refusals, the event loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from gateway.calls import CallInfo
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import InsertRow, UpdateRow
from gateway.metrics.tables import Call, InterruptionEvent
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import Backchannel, Interruption, PausePlayout, StopPlayout

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


async def test_emitted_records_land_in_batches(engine: Engine, spool_path: Path) -> None:
    writer = MetricsWriter(engine, spool_path, batch_interval_s=0.05, instance="test")
    await writer.start()
    rec = CallRecorder(CallInfo("c-1", "sip", "dental"), writer.emit, instance="test")
    rec.started(T0)
    rec.answered(T0 + timedelta(seconds=1))
    for i in range(50):
        rec.on_event(Backchannel(t=10.0 + i, onset=9.6 + i, duration=0.4, probability=0.2, mode="adaptive"))
    rec.ended("caller_hangup", T0 + timedelta(seconds=70))
    stats = await writer.wait_until(lambda s: s.written >= 53, timeout=10)  # start, answer, 50 events, end
    await writer.stop()

    assert stats.spooled == 0 and stats.rejected == 0 and stats.spool_depth == 0
    assert _count(engine, InterruptionEvent) == 50
    with engine.connect() as conn:
        call = conn.execute(select(Call.__table__)).one()
    assert call.ended_at == T0 + timedelta(seconds=70)
    assert call.answered_at == T0 + timedelta(seconds=1)
    assert call.end_reason == "caller_hangup"


async def test_replayed_records_are_applied_once(engine: Engine, spool_path: Path) -> None:
    call = InsertRow("calls", {"call_id": "x", "edge": "sip", "agent": "a", "started_at": T0})
    event = InsertRow(
        "interruption_events",
        {"occurred_at": T0, "offset_s": 1.0, "kind": "interruption", "mode": "vad"},
        call_uid=call.uid,
    )
    end = UpdateRow("calls", call.uid, {"ended_at": T0 + timedelta(seconds=5), "end_reason": "caller_hangup"})
    writer = MetricsWriter(engine, spool_path, instance="test")
    for _ in range(3):  # the same records, three times over (as after an ambiguous commit)
        for record in (call, event, end):
            writer.emit(record)
        await writer.flush()
    await writer.stop()
    assert writer.stats.written == 9
    assert _count(engine, Call) == 1
    assert _count(engine, InterruptionEvent) == 1


async def test_refused_record_is_set_aside_without_blocking_others(engine: Engine, spool_path: Path) -> None:
    good = InsertRow("calls", {"call_id": "ok", "edge": "sip", "agent": "a", "started_at": T0})
    orphan = InsertRow(
        "interruption_events",
        {"occurred_at": T0, "offset_s": 1.0, "kind": "backchannel", "mode": "vad"},
        call_uid="no-such-call",
    )
    writer = MetricsWriter(engine, spool_path, instance="test")
    writer.emit(good)
    writer.emit(orphan)
    stats = await writer.flush()
    await writer.stop()
    assert (stats.written, stats.rejected, stats.spool_depth) == (1, 1, 0)
    assert _count(engine, Call) == 1
    assert "no-such-call" in writer.rejected_path.read_text()


async def test_interruption_outcome_updates_the_row(engine: Engine, spool_path: Path) -> None:
    writer = MetricsWriter(engine, spool_path, instance="test")
    rec = CallRecorder(CallInfo("c-2", "webrtc", "dental"), writer.emit)
    rec.started(T0)
    rec.on_events(
        [
            Interruption(t=5.3, onset=5.0, latency_ms=300, mode="adaptive", probability=0.9),
            PausePlayout(t=5.3),
        ],
        agent_text_heard="Our opening hours are",
    )
    await writer.flush()
    rec.on_event(StopPlayout(t=6.1))
    await writer.flush()
    await writer.stop()
    with engine.connect() as conn:
        row = conn.execute(select(InterruptionEvent.__table__)).one()
    assert row.agent_action == "stopped"
    assert row.agent_text_heard == "Our opening hours are"
    assert row.detection_delay_ms == 300 and row.probability == 0.9 and row.mode == "adaptive"
    assert row.occurred_at == T0 + timedelta(seconds=5.3)
    assert abs(row.overlap_s - 0.3) < 1e-9


async def test_emit_never_waits_for_the_database(engine: Engine, spool_path: Path) -> None:
    """10 000 emits while the writer runs: each is a queue append (and, every `group_size` records, one
    pickle call), not a database round trip; the database work is in another process."""
    writer = MetricsWriter(engine, spool_path, batch_interval_s=0.01, instance="test")
    await writer.start()
    call = InsertRow("calls", {"call_id": "load", "edge": "sip", "agent": "a", "started_at": T0})
    writer.emit(call)
    durations: list[float] = []
    for i in range(10_000):
        start = time.perf_counter()
        writer.emit(
            InsertRow(
                "interruption_events",
                {"occurred_at": T0, "offset_s": float(i), "kind": "backchannel", "mode": "vad"},
                call_uid=call.uid,
            )
        )
        durations.append(time.perf_counter() - start)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await writer.wait_until(lambda s: s.written >= 10_001, timeout=60)
    await writer.stop()
    durations.sort()
    assert durations[len(durations) // 2] < 50e-6
    assert sum(durations) < 1.0
    assert _count(engine, InterruptionEvent) == 10_000
