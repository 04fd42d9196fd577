"""The database goes away (or hangs) mid-call: the call goes on, events spool, and when the database
comes back every event lands exactly once.

PostgreSQL is made unreachable by a TCP proxy this test owns (the shared server keeps running for
everyone else); SQLite by another connection holding an exclusive lock on the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, make_url, select

from gateway.calls import CallInfo
from gateway.metrics.database import create_db_engine
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import InsertRow, Record
from gateway.metrics.tables import Call, InterruptionEvent, SpeechSegment
from gateway.metrics.writer import MetricsWriter
from gateway.turns.events import (
    AgentSpeechEnd,
    AgentSpeechStart,
    Backchannel,
    Interruption,
    PausePlayout,
    UserSpeechEnd,
    UserSpeechStart,
)

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
# The writer's database process gives up quickly on an unreachable server or a locked file.
FAIL_FAST: dict[str, Any] = {"connect_timeout_s": 1, "busy_timeout_ms": 50}


class TcpProxy:
    """A byte pump between clients and a server that the test can cut, stall and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones (the server is 'gone')."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._server = None

    async def restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self.start()

    def stall(self) -> None:
        """Keep connections open but forward nothing (the server 'hangs')."""
        self._flowing.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        with contextlib.suppress(asyncio.CancelledError):  # the loop closing at teardown
            await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class Outage:
    """Breaks and heals one test database, whichever the dialect."""

    def __init__(self, url: str, proxy: TcpProxy | None) -> None:
        self.url = url
        self.proxy = proxy
        self._lock: sqlite3.Connection | None = None

    async def fail(self) -> None:
        """Unreachable: connections refused (PostgreSQL) or the file locked (SQLite)."""
        if self.proxy:
            await self.proxy.cut()
        else:
            self._take_lock()

    async def hang(self) -> None:
        """Slow: statements wait (a stalled connection, or a lock with a long busy timeout)."""
        if self.proxy:
            self.proxy.stall()
        else:
            self._take_lock()

    async def heal(self) -> None:
        if self.proxy:
            await self.proxy.restore()
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def _take_lock(self) -> None:
        database = make_url(self.url).database
        assert database
        self._lock = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._lock.execute("BEGIN EXCLUSIVE")


@contextlib.asynccontextmanager
async def faulty_database(url: str) -> AsyncIterator[tuple[str, Outage]]:
    """The writer's URL (through a proxy for PostgreSQL) and the switch that breaks it. The writer's
    database process connects through the proxy, which runs on this test's event loop."""
    proxy: TcpProxy | None = None
    writer_url = url
    if url.startswith("postgresql"):
        parsed = make_url(url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        await proxy.start()
        writer_url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    outage = Outage(url, proxy)
    try:
        yield writer_url, outage
    finally:
        await outage.heal()
        if proxy:
            await proxy.cut()


def _keys(engine: Engine, model: type) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(model.uid)).scalars())  # type: ignore[attr-defined]


class Session:
    """A stand-in for a call session: feeds a recorder the events of an ongoing conversation."""

    def __init__(self, writer: MetricsWriter) -> None:
        self.sent: list[Record] = []
        self.writer = writer
        self.recorder = CallRecorder(
            CallInfo("call-fault", "sip", "dental", codec="PCMU"), self.emit, instance="gw"
        )
        self.t = 0.0

    def emit(self, record: Record) -> None:
        self.sent.append(record)
        self.writer.emit(record)

    def talk(self, exchanges: int) -> None:
        """`exchanges` rounds of: agent speaks, caller backchannels, caller barges in."""
        for _ in range(exchanges):
            t = self.t
            self.recorder.on_events([AgentSpeechStart(t=t), UserSpeechStart(t=t + 1.0)])
            self.recorder.on_events(
                [UserSpeechEnd(t=t + 1.4, duration=0.4), Backchannel(t=t + 1.4, onset=t + 1.0, duration=0.4)]
            )
            self.recorder.on_events([UserSpeechStart(t=t + 2.0)])
            self.recorder.on_events(
                [
                    Interruption(t=t + 2.3, onset=t + 2.0, latency_ms=300, mode="adaptive", probability=0.8),
                    PausePlayout(t=t + 2.3),
                ],
                agent_text_heard="words",
            )
            self.recorder.on_events([AgentSpeechEnd(t=t + 2.3), UserSpeechEnd(t=t + 3.0, duration=1.0)])
            self.t += 4.0

    def uids(self, table: str) -> set[str]:
        return {r.uid for r in self.sent if isinstance(r, InsertRow) and r.table == table}


async def test_database_unreachable_mid_call(migrated_url: str, spool_path: Path) -> None:
    async with faulty_database(migrated_url) as (url, outage):
        writer = MetricsWriter(
            url, spool_path, batch_interval_s=0.05, write_timeout_s=5, instance="gw", **FAIL_FAST
        )
        await writer.start()
        session = Session(writer)
        session.recorder.started(T0)
        session.recorder.answered(T0 + timedelta(seconds=2))
        session.talk(3)
        await writer.wait_until(lambda s: s.written >= len(session.sent), timeout=10)
        before_outage = writer.stats

        await outage.fail()
        session.talk(5)  # the call goes on
        await writer.wait_until(lambda s: s.spooled >= len(session.sent) - before_outage.written, timeout=20)
        session.talk(2)
        session.recorder.ended("caller_hangup", T0 + timedelta(seconds=60))
        stats = await writer.wait_until(
            lambda s: s.spooled >= len(session.sent) - before_outage.written, timeout=20
        )
        assert stats.spool_depth == len(session.sent) - before_outage.written
        assert not stats.db_available and stats.db_failures >= 1

        await outage.heal()
        stats = await writer.wait_until(lambda s: s.spool_depth == 0 and s.db_available, timeout=20)
        await writer.stop()

    check = create_db_engine(migrated_url)
    try:
        events = _keys(check, InterruptionEvent)
        assert len(events) == len(set(events)) == 10 * 2
        assert set(events) == session.uids("interruption_events")
        segments = _keys(check, SpeechSegment)
        assert sorted(segments) == sorted(session.uids("speech_segments"))
        with check.connect() as conn:
            call = conn.execute(select(Call.__table__)).one()
            paused = conn.execute(
                select(func.count()).where(InterruptionEvent.agent_action == "paused")
            ).scalar_one()
        assert (call.end_reason, call.ended_at) == ("caller_hangup", T0 + timedelta(seconds=60))
        assert paused == 10
        assert not spool_path.exists()
    finally:
        check.dispose()


async def test_database_hangs_then_recovers(migrated_url: str, spool_path: Path) -> None:
    """A write that outlives write_timeout is spooled while it still runs; whether it finally commits
    or not, each record lands once."""
    async with faulty_database(migrated_url) as (url, outage):
        writer = MetricsWriter(
            url,
            spool_path,
            batch_interval_s=0.05,
            write_timeout_s=0.3,
            instance="gw",
            connect_timeout_s=1,
            busy_timeout_ms=60_000,  # a locked SQLite file makes statements wait: the database "hangs"
        )
        await writer.start()
        session = Session(writer)
        session.recorder.started(T0)
        session.talk(1)
        await writer.wait_until(lambda s: s.written >= len(session.sent), timeout=10)
        written_before = writer.stats.written

        await outage.hang()
        session.talk(4)
        stats = await writer.wait_until(lambda s: s.spooled >= len(session.sent) - written_before, timeout=20)
        assert stats.db_failures >= 1 and not stats.db_available
        await outage.heal()
        session.talk(1)
        session.recorder.ended("agent_hangup")
        await writer.wait_until(
            lambda s: s.spool_depth == 0 and s.db_available and writer.pending == 0, timeout=30
        )
        await writer.flush()
        await writer.stop()

    check = create_db_engine(migrated_url)
    try:
        events = _keys(check, InterruptionEvent)
        assert len(events) == len(set(events)) == 6 * 2
        assert set(events) == session.uids("interruption_events")
        with check.connect() as conn:
            assert conn.execute(select(Call.end_reason)).scalar_one() == "agent_hangup"
    finally:
        check.dispose()


@pytest.mark.parametrize("batches", [1, 7])
async def test_spool_survives_a_writer_restart_during_outage(
    migrated_url: str, spool_path: Path, batches: int
) -> None:
    """Spooled while the database was away, then the gateway restarts: the new writer flushes it."""
    async with faulty_database(migrated_url) as (url, outage):
        await outage.fail()
        writer = MetricsWriter(
            url, spool_path, batch_interval_s=0.05, write_timeout_s=5, instance="gw", **FAIL_FAST
        )
        await writer.start()
        session = Session(writer)
        session.recorder.started(T0)
        for _ in range(batches):
            session.talk(1)
            await writer.flush()
        await writer.stop()
        assert writer.stats.spool_depth == len(session.sent)

        await outage.heal()
        second = MetricsWriter(url, spool_path, instance="gw", **FAIL_FAST)
        await second.start()
        await second.stop()
        stats = second.stats
        assert stats.spool_depth == 0 and stats.closed_on_restart == 1

    check = create_db_engine(migrated_url)
    try:
        assert sorted(_keys(check, InterruptionEvent)) == sorted(session.uids("interruption_events"))
        with check.connect() as conn:
            assert conn.execute(select(Call.end_reason)).scalar_one() == "gateway_restart"
    finally:
        check.dispose()


async def test_worker_killed_while_the_database_hangs(migrated_url: str, spool_path: Path) -> None:
    """The database process is stuck in a statement and dies: a new one takes over, every event lands once."""
    async with faulty_database(migrated_url) as (url, outage):
        writer = MetricsWriter(
            url,
            spool_path,
            batch_interval_s=0.05,
            write_timeout_s=0.3,
            instance="gw",
            connect_timeout_s=1,
            busy_timeout_ms=60_000,
        )
        await writer.start()
        session = Session(writer)
        session.recorder.started(T0)
        session.talk(1)
        await writer.wait_until(lambda s: s.written >= len(session.sent), timeout=10)
        written_before = writer.stats.written

        await outage.hang()
        session.talk(2)
        await writer.wait_until(lambda s: s.spooled >= len(session.sent) - written_before, timeout=20)
        stuck = writer.worker_pid
        assert stuck is not None
        os.kill(stuck, signal.SIGKILL)
        session.talk(2)
        await outage.heal()
        await writer.wait_until(
            lambda s: (
                s.worker_restarts >= 1 and s.spool_depth == 0 and s.db_available and writer.pending == 0
            ),
            timeout=30,
        )
        session.recorder.ended("caller_hangup", T0 + timedelta(seconds=30))
        await writer.flush()
        await writer.stop()
        assert writer.worker_pid is None

    check = create_db_engine(migrated_url)
    try:
        events = _keys(check, InterruptionEvent)
        assert len(events) == len(set(events)) == 5 * 2
        assert set(events) == session.uids("interruption_events")
        with check.connect() as conn:
            assert conn.execute(select(Call.end_reason)).scalar_one() == "caller_hangup"
    finally:
        check.dispose()


async def test_stop_does_not_wait_for_a_hung_database(migrated_url: str, spool_path: Path) -> None:
    """Shutting down while the database hangs: `stop` spools, kills the stuck process after its grace
    period, and the next writer flushes the spool once the database is back."""
    async with faulty_database(migrated_url) as (url, outage):
        writer = MetricsWriter(
            url,
            spool_path,
            batch_interval_s=0.05,
            write_timeout_s=0.3,
            instance="gw",
            connect_timeout_s=1,
            busy_timeout_ms=60_000,
        )
        await writer.start()
        session = Session(writer)
        session.recorder.started(T0)
        await writer.wait_until(lambda s: s.written >= 1, timeout=10)
        await outage.hang()
        session.talk(3)
        await asyncio.wait_for(writer.stop(), timeout=10)
        assert writer.stats.spool_depth == len(session.sent) - 1

        await outage.heal()
        second = MetricsWriter(url, spool_path, instance="gw", **FAIL_FAST)
        await second.start()
        await second.stop()
        assert second.stats.spool_depth == 0 and second.stats.closed_on_restart == 1

    check = create_db_engine(migrated_url)
    try:
        assert sorted(_keys(check, InterruptionEvent)) == sorted(session.uids("interruption_events"))
    finally:
        check.dispose()
