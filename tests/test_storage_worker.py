"""The writer's database process, against SQLite and PostgreSQL: the audio process does no database work,
a killed worker is replaced without losing a record, and an attempt reads the spool only up to its end."""

from __future__ import annotations

import os
import pickle
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from gateway.calls import CallInfo
from gateway.metrics import persist
from gateway.metrics.database import create_db_engine
from gateway.metrics.dbworker import Attempt, DbWorker, WorkerConfig
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import InsertRow, Record
from gateway.metrics.spool import Spool
from gateway.metrics.tables import Call, InterruptionEvent
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import Backchannel

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def _event_uids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(InterruptionEvent.uid)).scalars())


def _call() -> InsertRow:
    return InsertRow("calls", {"call_id": "w", "edge": "sip", "agent": "a", "started_at": T0})


def _event(call: InsertRow, i: int) -> InsertRow:
    return InsertRow(
        "interruption_events",
        {"occurred_at": T0, "offset_s": float(i), "kind": "backchannel", "mode": "vad"},
        call_uid=call.uid,
    )


async def test_database_work_runs_in_another_process(
    engine: Engine, spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_database_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("database work in the audio process")

    monkeypatch.setattr(persist, "apply_records", no_database_here)
    monkeypatch.setattr(Engine, "connect", no_database_here)
    writer = MetricsWriter(engine, spool_path, batch_interval_s=0.05, instance="t")
    await writer.start()
    pid = writer.worker_pid
    call = _call()
    writer.emit(call)
    for i in range(300):
        writer.emit(_event(call, i))
    stats = await writer.wait_until(lambda s: s.written >= 301, timeout=20)
    await writer.stop()
    monkeypatch.undo()

    assert pid is not None and pid != os.getpid()
    assert writer.worker_pid is None  # stopped with the writer
    assert (stats.spooled, stats.rejected, stats.worker_restarts) == (0, 0, 0)
    assert len(_event_uids(engine)) == 300


async def test_killed_worker_is_replaced_and_nothing_is_lost(engine: Engine, spool_path: Path) -> None:
    writer = MetricsWriter(engine, spool_path, batch_interval_s=0.05, instance="t")
    await writer.start()
    sent: list[Record] = []

    def emit(record: Record) -> None:
        sent.append(record)
        writer.emit(record)

    rec = CallRecorder(CallInfo("killed", "sip", "a"), emit, instance="t")
    rec.started(T0)
    t = 0.0
    pids: list[int] = []
    for kill in range(1, 4):
        for _ in range(20):
            t += 1.0
            rec.on_event(Backchannel(t=t, onset=t - 0.4, duration=0.4))
        pid = writer.worker_pid
        assert pid is not None
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)  # between cycles, or in the middle of one
        for _ in range(5):
            t += 1.0
            rec.on_event(Backchannel(t=t, onset=t - 0.4, duration=0.4))
        await writer.wait_until(
            lambda s, kill=kill, pid=pid: (
                s.worker_restarts >= kill
                and writer.worker_pid not in (None, pid)
                and s.db_available
                and s.spool_depth == 0
                and writer.pending == 0
            ),
            timeout=60,
        )
    rec.ended("caller_hangup", T0 + timedelta(minutes=2))
    await writer.flush()
    await writer.stop()

    stats = writer.stats
    assert stats.worker_restarts == 3 and len(set(pids)) == 3 and stats.rejected == 0
    events = _event_uids(engine)
    assert len(events) == len(set(events)) == 75
    assert set(events) == {r.uid for r in sent if r.table == "interruption_events"}
    with engine.connect() as conn:
        assert conn.execute(select(Call.end_reason)).scalar_one() == "caller_hangup"


def test_attempt_reads_the_spool_up_to_its_end(engine: Engine, spool_path: Path) -> None:
    """Records spooled after the attempt was asked for wait for the next one (they are newer than its
    batch); what it applied is reported, and the batch's groups follow the spool."""
    call = _call()
    spool = Spool(spool_path)
    spool.append([call, _event(call, 1)])
    end = spool.size
    spool.append([_event(call, 2)])  # appended by the writer while the attempt runs
    config = WorkerConfig(
        url=engine.url.render_as_string(hide_password=False),
        spool_path=str(spool_path),
        rejected_path=f"{spool_path}.rejected",
        instance="t",
    )
    worker = DbWorker(config, engine=engine)
    batch = [_event(call, 3), _event(call, 4)]
    result = worker.attempt(Attempt(1, end, False, frozenset(), [pickle.dumps(batch)]))
    assert result.ok and (result.written, result.spool_offset, result.groups_done) == (4, end, 1)
    with engine.connect() as conn:
        offsets = conn.execute(select(InterruptionEvent.offset_s).order_by(InterruptionEvent.id)).scalars()
        assert list(offsets) == [1.0, 3.0, 4.0]
    spool.consume(result.spool_offset)
    assert spool.depth == 1


def test_attempt_reports_an_outage_and_what_did_not_commit(migrated_url: str, spool_path: Path) -> None:
    call = _call()
    config = WorkerConfig(
        url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        spool_path=str(spool_path),
        rejected_path=f"{spool_path}.rejected",
        instance="t",
        connect_timeout_s=1,
    )
    worker = DbWorker(config)
    result = worker.attempt(Attempt(7, 0, True, frozenset(), [pickle.dumps([call])]))
    worker.close()
    assert result.id == 7 and result.unavailable and result.error
    assert (result.written, result.groups_done, result.recovered) == (0, 0, False)
    check = create_db_engine(migrated_url)
    with check.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Call)).scalar_one() == 0
    check.dispose()
