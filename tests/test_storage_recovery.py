"""A crash: the writer dies without flushing. On the next start, the spool is flushed and calls the
crashed run left open are closed with end_reason 'gateway_restart' (only this instance's, never live ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from gateway.calls import CallInfo
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.tables import Call, InterruptionEvent
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import Backchannel, Interruption, StopPlayout

T0 = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def _calls(engine: Engine) -> dict[str, tuple[str | None, datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Call.call_id, Call.end_reason, Call.ended_at)).all()
    return {call_id: (reason, ended) for call_id, reason, ended in rows}


async def test_crash_then_restart_closes_open_calls(engine: Engine, spool_path: Path) -> None:
    crashed = MetricsWriter(engine, spool_path, batch_interval_s=60, instance="gw-1")
    await crashed.start()
    open_call = CallRecorder(CallInfo("open", "sip", "dental"), crashed.emit, instance="gw-1")
    open_call.started(T0)
    open_call.answered(T0 + timedelta(seconds=1))
    open_call.on_events(
        [Interruption(t=12.0, onset=11.7, latency_ms=300), StopPlayout(t=12.0)], agent_text_heard="Hello"
    )
    done_call = CallRecorder(CallInfo("done", "sip", "dental"), crashed.emit, instance="gw-1")
    done_call.started(T0)
    done_call.ended("caller_hangup", T0 + timedelta(seconds=5))
    other_instance = CallRecorder(CallInfo("elsewhere", "sip", "dental"), crashed.emit, instance="gw-2")
    other_instance.started(T0)
    await crashed.flush()
    assert crashed.stats.written == 6

    open_call.on_event(Backchannel(t=20.0, onset=19.5, duration=0.5))  # only in memory: lost in the crash
    crashed.abandon()

    restarted = MetricsWriter(engine, spool_path, instance="gw-1")
    live = CallRecorder(CallInfo("live", "webrtc", "dental"), restarted.emit, instance="gw-1")
    live.started(T0 + timedelta(minutes=5))  # a call already running in the new process
    await restarted.start()
    await restarted.stop()

    assert restarted.stats.closed_on_restart == 1
    calls = _calls(engine)
    # Closed at the last moment it was known alive: the interruption at answered_at + 12 s.
    assert calls["open"] == ("gateway_restart", T0 + timedelta(seconds=13))
    assert calls["done"] == ("caller_hangup", T0 + timedelta(seconds=5))
    assert calls["elsewhere"] == (None, None)
    assert calls["live"] == (None, None)
    with engine.connect() as conn:
        assert conn.execute(select(InterruptionEvent.kind)).scalars().all() == ["interruption"]


async def test_restart_on_an_unreachable_database_recovers_later(migrated_url: str, spool_path: Path) -> None:
    """If the database is down at start, recovery waits for it instead of failing or closing live calls."""
    from gateway.metrics.database import create_db_engine

    engine = create_db_engine(migrated_url)
    crashed = MetricsWriter(engine, spool_path, instance="gw-1")
    CallRecorder(CallInfo("open", "sip", "a"), crashed.emit, instance="gw-1").started(T0)
    await crashed.flush()
    crashed.abandon()
    engine.dispose()

    broken = create_db_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_timeout_s=1)
    restarted = MetricsWriter(broken, spool_path, instance="gw-1")
    live = CallRecorder(CallInfo("live", "sip", "a"), restarted.emit, instance="gw-1")
    live.started(T0 + timedelta(minutes=1))
    await restarted.start()
    stats = restarted.stats
    await restarted.stop()
    assert not stats.recovered and not stats.db_available and stats.spool_depth == 1

    healed_engine = create_db_engine(migrated_url)
    healed = MetricsWriter(healed_engine, spool_path, instance="gw-1")
    await healed.start()
    await healed.stop()
    # The spooled 'live' call belonged to the process that stopped cleanly-but-offline: it is not running
    # any more, so this start closes it as well as the crashed one.
    assert healed.stats.closed_on_restart == 2
    assert {reason for reason, _ in _calls(healed_engine).values()} == {"gateway_restart"}
    healed_engine.dispose()
