"""Several gateway nodes on one PostgreSQL: who is alive, and closing the calls of a node that died.

A node (`gateway serve --role node`) holds a PostgreSQL *session advisory lock* named after its
instance (`calls.instance`) for as long as it runs, on a connection of its own. PostgreSQL releases
the lock the moment that connection goes away: the process was killed, its machine died, or the
network between them broke (after TCP's own timeouts). So a lock that can be taken means its node is
gone, and no table of heartbeats, no clock shared between machines and no migration are needed.

Every node sweeps every `interval_s`: for each other instance with calls that have no end, it tries
that instance's lock; if it gets it, it closes those calls with `end_reason = 'node_lost'` and
`ended_at` the last moment each call is known to have been alive (its latest event, turn or speech,
`persist.last_alive`), then releases the lock. Exactly once: the update only touches rows whose
`ended_at` is still empty, the lock keeps two sweepers off the same node at the same time, and a
node restarting under the same name takes its lock before it closes its own leftovers
(`gateway_restart`, by the metrics writer), so whichever comes first closes a call and the other
finds it closed.

Limits (docs in docker/README.md): every gateway writing to the database must run as a node (a
standalone gateway holds no lock, so its open calls look abandoned); a node cut off from PostgreSQL
while its calls go on has them closed as `node_lost` by the others, and its writer's later updates
(spooled while the database was away) then write the real end over it. After its own connection to
the database comes back a node waits `grace_s` before sweeping, so that nodes reconnecting after a
database restart retake their locks first.

Blocking database work runs in a thread (a few small queries every few seconds); the audio path is
not involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, func, select, update

from gateway.metrics.database import create_db_engine
from gateway.metrics.persist import last_alive
from gateway.metrics.tables import Call

log = logging.getLogger(__name__)

NODE_LOST = "node_lost"
# The advisory lock space of the gateway's node locks: (LOCK_CLASS, hashtext(instance)).
LOCK_CLASS = 0x6777  # "gw"


class NodeLockHeld(RuntimeError):
    """Another running process holds this instance's lock (two nodes with one name)."""


def take_node_lock(conn: Connection, instance: str, timeout_s: float = 10.0) -> None:
    """Take this node's lock on `conn` (a connection kept open for the node's life). A lock still held
    by a sweeper closing this instance's calls is released within moments: wait for it, up to
    `timeout_s`; a lock held longer belongs to another live process with the same name."""
    deadline = time.monotonic() + timeout_s
    while not _try_lock(conn, instance):
        if time.monotonic() > deadline:
            raise NodeLockHeld(
                f"another gateway runs as instance {instance!r} on this database "
                "(give each node its own name: --instance or GATEWAY_INSTANCE)"
            )
        time.sleep(0.1)


def release_node_lock(conn: Connection, instance: str) -> None:
    conn.execute(select(func.pg_advisory_unlock(LOCK_CLASS, func.hashtext(instance))))


def _try_lock(conn: Connection, instance: str) -> bool:
    return bool(conn.execute(select(func.pg_try_advisory_lock(LOCK_CLASS, func.hashtext(instance)))).scalar())


def sweep_lost_nodes(engine: Engine, me: str) -> dict[str, list[int]]:
    """Close the open calls of every other instance whose lock can be taken (its node is gone). Returns
    the calls closed, by instance."""
    with engine.connect() as probe:
        probe = probe.execution_options(isolation_level="AUTOCOMMIT")
        instances = [
            row[0]
            for row in probe.execute(
                select(Call.instance).where(Call.ended_at.is_(None), Call.instance != me).distinct()
            )
        ]
        closed: dict[str, list[int]] = {}
        for instance in instances:
            if not _try_lock(probe, instance):
                continue  # alive (or another sweeper is on it right now)
            try:
                with engine.begin() as conn:
                    ids = close_calls_of(conn, instance)
            finally:
                release_node_lock(probe, instance)
            if ids:
                closed[instance] = ids
    return closed


def close_calls_of(conn: Connection, instance: str) -> list[int]:
    """Close `instance`'s calls that have no end, as `node_lost` (inside the caller's transaction)."""
    open_calls = conn.execute(
        select(Call.id, Call.started_at, Call.answered_at)
        .where(Call.instance == instance, Call.ended_at.is_(None))
        .with_for_update(skip_locked=True)
    ).all()
    closed: list[int] = []
    for call_pk, started_at, answered_at in open_calls:
        result = conn.execute(
            update(Call)
            .where(Call.id == call_pk, Call.ended_at.is_(None))
            .values(ended_at=last_alive(conn, call_pk, started_at, answered_at), end_reason=NODE_LOST)
        )
        if result.rowcount:
            closed.append(call_pk)
    return closed


@dataclass
class SweeperStats:
    sweeps: int = 0
    closed: dict[str, int] = field(default_factory=dict)  # calls closed as node_lost, by lost instance
    failures: int = 0


class NodeSweeper:
    """The node's service (start, drain, stop): holds the node's lock and sweeps lost nodes' calls."""

    name = "nodes"

    def __init__(
        self,
        db_url: str,
        instance: str,
        *,
        interval_s: float = 2.0,
        grace_s: float = 5.0,
        lock_timeout_s: float = 10.0,
    ) -> None:
        self.db_url = db_url
        self.instance = instance
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.lock_timeout_s = lock_timeout_s
        self.stats = SweeperStats()
        self._engine: Engine | None = None
        self._lock_conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweep_after = 0.0
        # One sweep at a time, and none left running in its thread once stop() returns (a cancelled
        # `to_thread` goes on): sweep_now() waits for the background round, _close() for both.
        self._sweeping = threading.Lock()

    async def start(self) -> None:
        self._engine = create_db_engine(self.db_url)
        if self._engine.dialect.name != "postgresql":
            self._engine.dispose()
            self._engine = None
            raise ValueError("gateway nodes share a PostgreSQL database; the metrics URL is not one")
        await asyncio.to_thread(self._lock)
        log.info("node %s: holding its lock on the metrics database", self.instance)
        self._task = asyncio.create_task(self._run(), name="node-sweeper")

    async def drain(self, timeout: float) -> None:
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._close)

    async def sweep_now(self) -> dict[str, list[int]]:
        """One sweep, now (tests and the first round after start)."""
        return await asyncio.to_thread(self._sweep)

    # -- in a thread ---------------------------------------------------------------------------

    def _lock(self) -> None:
        assert self._engine is not None
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            take_node_lock(conn, self.instance, self.lock_timeout_s)
        except BaseException:
            conn.close()
            raise
        self._lock_conn = conn
        self._sweep_after = time.monotonic()

    def _lock_alive(self) -> bool:
        """Whether this node still holds its lock (its connection is up); retake it when it dropped."""
        conn = self._lock_conn
        try:
            if conn is not None:
                conn.execute(select(1))
                return True
        except Exception:
            with contextlib.suppress(Exception):
                conn.invalidate()  # type: ignore[union-attr]
            self._lock_conn = None
        self._lock()
        log.warning("node %s: took its lock again after losing the database connection", self.instance)
        self._sweep_after = time.monotonic() + self.grace_s  # let others retake theirs first
        return False

    def _sweep(self) -> dict[str, list[int]]:
        with self._sweeping:
            return self._sweep_once()

    def _sweep_once(self) -> dict[str, list[int]]:
        if self._engine is None:
            return {}  # stopped
        if not self._lock_alive() or time.monotonic() < self._sweep_after:
            return {}
        closed = sweep_lost_nodes(self._engine, self.instance)
        self.stats.sweeps += 1
        for instance, ids in closed.items():
            self.stats.closed[instance] = self.stats.closed.get(instance, 0) + len(ids)
            log.warning("node %s is gone: closed %d of its calls as %s", instance, len(ids), NODE_LOST)
        return closed

    def _close(self) -> None:
        with self._sweeping:
            self._release()

    def _release(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                release_node_lock(self._lock_conn, self.instance)
            with contextlib.suppress(Exception):
                self._lock_conn.close()
            self._lock_conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._sweep)
            except Exception as exc:  # the database is away: try again next round
                self.stats.failures += 1
                log.warning("node sweep failed (%s); retrying in %.0f s", exc, self.interval_s)
            await asyncio.sleep(self.interval_s)


__all__ = [
    "LOCK_CLASS",
    "NODE_LOST",
    "NodeLockHeld",
    "NodeSweeper",
    "SweeperStats",
    "close_calls_of",
    "release_node_lock",
    "sweep_lost_nodes",
    "take_node_lock",
]
