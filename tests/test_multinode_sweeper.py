"""Calls of a node that died are closed as `node_lost` by a surviving node, or by its own restart,
exactly once (gateway.metrics.nodes), against the local PostgreSQL.

A node's life is its lock: a NodeSweeper holds it on a connection of its own; a node "killed" here
is a process that took its lock and was then killed with SIGKILL, so PostgreSQL itself sees the
connection die, as it does when a real node dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gateway.calls import CallInfo
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.nodes import NODE_LOST, NodeLockHeld, NodeSweeper, sweep_lost_nodes
from gateway.metrics.persist import GATEWAY_RESTART, apply_records, close_open_calls
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import Record
from gateway.metrics.tables import Call
from gateway.turns.events import Backchannel
from tests.conftest import create_pg_database, drop_pg_database

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    url = create_pg_database(postgres_admin_url)
    try:
        schema.upgrade(url)
        yield url
    finally:
        drop_pg_database(postgres_admin_url, url)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = create_db_engine(pg_url)
    try:
        yield eng
    finally:
        eng.dispose()


def record_calls(engine: Engine, instance: str, n: int, *, ended: int = 0) -> list[str]:
    """`n` answered calls of `instance`, the first `ended` of them ended; each with one backchannel 30 s
    into the call (the last sign of life of an open one). Returns the calls' uids."""
    records: list[Record] = []
    uids = []
    for i in range(n):
        rec = CallRecorder(CallInfo(f"{instance}-{i}", "sip", "dental"), records.append, instance=instance)
        rec.started(T0 + timedelta(seconds=i))
        rec.answered(T0 + timedelta(seconds=i + 1))
        rec.on_event(Backchannel(t=30.0, onset=29.5, duration=0.3, mode="adaptive"))
        if i < ended:
            rec.ended("caller_hangup", T0 + timedelta(seconds=60))
        uids.append(rec.uid)
    with engine.begin() as conn:
        apply_records(conn, records)
    return uids


def calls_of(engine: Engine, instance: str) -> list[tuple[str | None, datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Call.end_reason, Call.ended_at).where(Call.instance == instance).order_by(Call.id)
        )
        return [(r.end_reason, r.ended_at) for r in rows]


class KilledNode:
    """A process that holds `instance`'s lock until it is killed with SIGKILL."""

    def __init__(self, url: str, instance: str) -> None:
        code = textwrap.dedent(
            f"""
            import sys, time
            from gateway.metrics.database import create_db_engine
            from gateway.metrics.nodes import take_node_lock
            conn = create_db_engine({url!r}).connect().execution_options(isolation_level="AUTOCOMMIT")
            take_node_lock(conn, {instance!r})
            print("LOCKED", flush=True)
            time.sleep(600)
            """
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == b"LOCKED"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


async def test_a_survivor_closes_a_killed_nodes_calls_once(pg_url: str, engine: Engine) -> None:
    survivor = NodeSweeper(pg_url, "node-a", grace_s=0, interval_s=3600)  # this test sweeps
    await survivor.start()
    try:
        record_calls(engine, "node-a", 2)  # the survivor's own calls, in progress
        record_calls(engine, "node-b", 3, ended=1)  # one ended before the kill, two open
        node_b = KilledNode(pg_url, "node-b")
        try:
            assert await survivor.sweep_now() == {}  # node-b alive: its calls stay open
            assert [r for r, _ in calls_of(engine, "node-b")] == ["caller_hangup", None, None]
        finally:
            node_b.kill()
        closed = await survivor.sweep_now()
        assert len(closed["node-b"]) == 2
        assert await survivor.sweep_now() == {}  # never twice
        rows = calls_of(engine, "node-b")
        assert [r for r, _ in rows] == ["caller_hangup", NODE_LOST, NODE_LOST]
        # ended at the last sign of life: the backchannel 30 s after the answer
        assert rows[1][1] == T0 + timedelta(seconds=2 + 30)
        assert [r for r, _ in calls_of(engine, "node-a")] == [None, None]  # its own calls are live
        assert survivor.stats.closed == {"node-b": 2}
    finally:
        await survivor.stop()


async def test_a_restart_after_the_sweep_finds_its_calls_closed(pg_url: str, engine: Engine) -> None:
    record_calls(engine, "node-b", 2)
    survivor = NodeSweeper(pg_url, "node-a", grace_s=0)
    await survivor.start()
    try:
        await survivor.sweep_now()  # node-b holds no lock: gone
    finally:
        await survivor.stop()
    with engine.begin() as conn:  # node-b's writer, on its restart
        close_open_calls(conn, "node-b", keep=set())
    assert [r for r, _ in calls_of(engine, "node-b")] == [NODE_LOST, NODE_LOST]


async def test_a_restart_before_the_sweep_leaves_nothing_to_sweep(pg_url: str, engine: Engine) -> None:
    record_calls(engine, "node-b", 2)
    restarted = NodeSweeper(pg_url, "node-b")
    await restarted.start()  # node-b is back under its name, and closes its own leftovers
    try:
        with engine.begin() as conn:
            close_open_calls(conn, "node-b", keep=set())
        assert sweep_lost_nodes(engine, "node-a") == {}
        assert [r for r, _ in calls_of(engine, "node-b")] == [GATEWAY_RESTART, GATEWAY_RESTART]
    finally:
        await restarted.stop()


async def test_two_nodes_with_one_name_are_refused(pg_url: str) -> None:
    first = NodeSweeper(pg_url, "node-a")
    await first.start()
    try:
        second = NodeSweeper(pg_url, "node-a", lock_timeout_s=0.3)
        with pytest.raises(NodeLockHeld, match="node-a"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()


def test_sweepers_racing_close_each_call_once(pg_url: str, engine: Engine) -> None:
    for dead in ("node-c", "node-d", "node-e"):
        record_calls(engine, dead, 5)
    barrier = threading.Barrier(4)
    results: list[dict[str, list[int]]] = []

    def sweep(me: str) -> None:
        own = create_db_engine(pg_url)
        try:
            barrier.wait()
            results.append(sweep_lost_nodes(own, me))
        finally:
            own.dispose()

    threads = [threading.Thread(target=sweep, args=(f"node-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    closed = [call for result in results for ids in result.values() for call in ids]
    assert len(results) == 4
    assert sorted(closed) == sorted(set(closed)) and len(closed) == 15
    for dead in ("node-c", "node-d", "node-e"):
        assert [r for r, _ in calls_of(engine, dead)] == [NODE_LOST] * 5


async def test_a_node_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        await NodeSweeper(f"sqlite:///{tmp_path / 'x.db'}", "node-a").start()
