"""The metrics writer: sessions `emit()` records; a separate process writes them in batches; audio never
waits, not even for the GIL.

Theory of operation
-------------------
* `emit(record)` appends to a small group; every `group_size` records the group is pickled (one C call,
  about a microsecond a record) onto an in-memory queue of bytes. It never awaits and never touches the
  database, so a session may call it from its audio loop. Records die young: the queue holds no
  objects the garbage collector tracks, so a busy writer does not make the audio process's collector
  promote and later sweep thousands of records (those full collections cost tens of milliseconds).
* The database work (SQLAlchemy, the driver, the rejected-records file) runs in a child process,
  `python -m gateway.metrics.dbworker`, with its own engine. This process keeps only cheap work: the
  pickling above and pipe I/O on the event loop. So the database's Python work never competes with the
  audio loop for the GIL (bench/bench_db.py measures it).
* Every `batch_interval_s` the writer task takes everything queued and runs one *cycle*:
  1. if a previous attempt is still running in the worker (it timed out but the worker is stuck), or
     no worker is ready (it died and its replacement is starting), the batch goes straight to the spool;
  2. otherwise the worker runs one attempt: apply the spool (oldest first, up to its end at the time
     of the request, in chunks, one transaction each), close calls a crashed run left open (once),
     then apply the batch (its groups joined into transactions of about `chunk_size` records);
  3. if that attempt fails because the database is unreachable, the batch's groups that did not
     commit are appended to the spool (fsync'd; unpickled and JSON-encoded here, a group at a time,
     yielding between groups); if it takes longer than `write_timeout_s`, or the worker dies, the
     whole batch is; the next cycle tries again.
* Only this process writes the spool; the worker only reads it, up to the end offset it was given,
  and reports how far it committed, which this process then consumes (never while an attempt runs).
* Records keep their order: nothing new reaches the database while older records wait in the spool.
* Exactly once: inserts carry unique `uid`s and use ON CONFLICT DO NOTHING; updates set fixed values.
  A batch that may or may not have committed (a timeout, a worker killed mid-commit) is spooled and
  re-applied later without harm.
* Records the database refuses (not an outage: e.g. a row for an unknown call) are retried one by one
  by the worker; those that still fail go to `<spool>.rejected` and are counted.
* A dead worker is replaced (counted in `stats.worker_restarts`, with a back-off if replacements keep
  failing); meanwhile batches spool. The first worker is started by `start()` (or the first `flush()`),
  which waits for it.
* A spool the disk cannot take (full, quota, I/O error) stops growing: nothing torn is left in it
  (spool.py), the batch goes back to the front of the in-memory queue (bounded by `max_queue`, the
  oldest dropped and counted beyond it), `stats.spool_full` is set and an ERROR logged once per
  episode; the next cycles try the database, then the spool, again. Sessions are never blocked.
* A crash of this process loses what was queued in memory (at most one batch interval) and a batch
  whose commit was in flight; the worker sees its pipe close and exits. On start, this instance's calls
  with no `ended_at` are closed with `end_reason = 'gateway_restart'` (after the spool is flushed, and
  never the calls live in this process).

Tests and operators observe the writer through `stats` and `await wait_until(predicate)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

import gateway
from gateway.metrics.dbworker import (
    HEADER,
    PICKLE_PROTOCOL,
    Attempt,
    Ready,
    Result,
    Stop,
    WorkerConfig,
    encode_frame,
)
from gateway.metrics.records import InsertRow, Record, UpdateRow
from gateway.metrics.spool import Spool, encode

log = logging.getLogger(__name__)


DEFAULT_BATCH_INTERVAL_S = 0.5
_MAX_RESPAWN_DELAY_S = 30.0


INSTANCE_ENV = "GATEWAY_INSTANCE"


def default_instance() -> str:
    """This gateway's name in `calls.instance`: `$GATEWAY_INSTANCE`, else the host name (several
    gateways on one host, or sharing one database from containers, need names of their own)."""
    return os.environ.get(INSTANCE_ENV) or socket.gethostname()


@dataclass(frozen=True)
class WriterStats:
    emitted: int = 0
    written: int = 0  # records applied to the database (from the queue or the spool)
    spooled: int = 0  # records appended to the spool
    spool_depth: int = 0  # records waiting in the spool now
    rejected: int = 0  # records the database refused (kept in <spool>.rejected)
    dropped: int = 0  # records dropped because the in-memory queue was full
    cycles: int = 0
    db_failures: int = 0  # cycles whose batch was spooled (database or worker unavailable)
    db_available: bool = True
    recovered: bool = False  # open calls from a previous run have been closed
    closed_on_restart: int = 0
    worker_restarts: int = 0  # database processes started to replace one that died
    spool_full: bool = False  # the last spool write failed (disk full): batches wait in memory
    spool_errors: int = 0  # spool writes that failed


class WorkerDied(ConnectionError):
    """The database process exited (or never became ready)."""


class _WorkerProcess:
    """This process's handle on one `gateway.metrics.dbworker` process: frames down stdin, results up
    stdout, read by a task. Everything here runs on the event loop and never blocks it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = loop.create_future()
        self.ready.add_done_callback(_consume_exception)
        self._pending: dict[int, asyncio.Future[Result]] = {}
        self._alive = True
        self._reader = asyncio.create_task(self._read(), name=f"metrics-db-{proc.pid}")

    @classmethod
    async def spawn(cls, config: WorkerConfig) -> _WorkerProcess:
        package_root = str(Path(gateway.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.metrics.dbworker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        worker = cls(proc)
        worker._send(config)
        return worker

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self._alive

    def submit(self, attempt: Attempt) -> asyncio.Future[Result]:
        if not self._alive:
            raise WorkerDied(f"metrics database process {self.pid} has exited")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending[attempt.id] = future
        self._send(attempt)
        return future

    def _send(self, message: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_frame(message))  # buffered by the transport: never blocks

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                header = await self.proc.stdout.readexactly(HEADER.size)
                message = pickle.loads(await self.proc.stdout.readexactly(HEADER.unpack(header)[0]))
                if isinstance(message, Ready) and not self.ready.done():
                    self.ready.set_result(message.pid)
                elif isinstance(message, Result):
                    future = self._pending.pop(message.id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._alive = False
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # lets the transport finish once the process is reaped
            died = WorkerDied(f"metrics database process {self.pid} has exited")
            if not self.ready.done():
                self.ready.set_exception(died)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(died)
            self._pending.clear()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, grace_s: float) -> None:
        """Ask the worker to exit (it finishes its attempt first); kill it after `grace_s`."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._send(Stop())
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            log.warning("metrics database process %d did not stop in %.1fs: killing it", self.pid, grace_s)
            self.kill()
            await self.proc.wait()
        await self._reader


class MetricsWriter:
    def __init__(
        self,
        db: Engine | str,
        spool_path: str | os.PathLike[str],
        *,
        batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
        write_timeout_s: float = 5.0,
        max_queue: int = 200_000,
        chunk_size: int = 200,
        group_size: int = 64,
        instance: str | None = None,
        connect_timeout_s: float = 3.0,
        busy_timeout_ms: int = 5000,
        start_timeout_s: float = 60.0,
        worker_nice: int = 10,
    ) -> None:
        """`db`: the database URL (or an Engine, whose URL is used: the worker process makes its own
        engine with `create_db_engine(url, connect_timeout_s=..., busy_timeout_ms=...)`).
        `worker_nice`: niceness added to the database process (0: same priority as this one)."""
        self.db_url = db if isinstance(db, str) else db.url.render_as_string(hide_password=False)
        self.spool = Spool(spool_path)
        self.rejected_path = Path(f"{spool_path}.rejected")
        self.batch_interval_s = batch_interval_s
        self.write_timeout_s = write_timeout_s
        self.chunk_size = chunk_size
        self.start_timeout_s = start_timeout_s
        self.instance = instance if instance is not None else default_instance()
        self._config = WorkerConfig(
            url=self.db_url,
            spool_path=str(self.spool.path),
            rejected_path=str(self.rejected_path),
            instance=self.instance,
            chunk_size=chunk_size,
            connect_timeout_s=connect_timeout_s,
            busy_timeout_ms=busy_timeout_ms,
            log_level=log.getEffectiveLevel(),
            nice=worker_nice,
        )
        self.group_size = group_size
        self._group: list[Record] = []
        self._queue: deque[tuple[bytes, int]] = deque()  # pickled groups of records, and their sizes
        self._queued = 0  # records in `_queue`
        self._max_queue = max_queue
        self._live_calls: set[str] = set()
        self._emitted = 0
        self._dropped = 0
        self._stats = WriterStats(spool_depth=self.spool.depth)
        self._spool_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-spool")
        self._worker: _WorkerProcess | None = None
        self._spawning: asyncio.Task[_WorkerProcess] | None = None
        self._spawned_once = False
        self._spawn_failures = 0
        self._next_spawn_at = 0.0
        self._attempt_ids = itertools.count(1)
        self._inflight: asyncio.Future[Result] | None = None
        self._cycle_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # -- the sessions' side -------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Queue a record. Never blocks; drops the oldest records (counted) if the queue is full."""
        if record.table == "calls":
            self._track_live_call(record)
        self._emitted += 1
        self._group.append(record)
        if len(self._group) >= self.group_size:
            self._seal_group()

    def _seal_group(self) -> None:
        if not self._group:
            return
        group, self._group = self._group, []
        self._queue.append((pickle.dumps(group, PICKLE_PROTOCOL), len(group)))
        self._queued += len(group)
        self._bound_queue()

    def _bound_queue(self) -> None:
        while self._queued > self._max_queue and len(self._queue) > 1:
            _, count = self._queue.popleft()
            self._queued -= count
            self._dropped += count

    @property
    def stats(self) -> WriterStats:
        return replace(
            self._stats, emitted=self._emitted, dropped=self._dropped, spool_depth=self.spool.depth
        )

    @property
    def pending(self) -> int:
        return self._queued + len(self._group)

    @property
    def worker_pid(self) -> int | None:
        """The database process's pid while it runs."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the database process, recover (flush the spool, close calls a crash left open) if the
        database answers, then run."""
        if self._task is not None:
            return
        await self.flush()
        self._task = asyncio.create_task(self._run(), name="metrics-writer")

    async def stop(self) -> None:
        """Stop the task, write (or spool) whatever is queued, stop the database process."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._queued:
            log.error("%d metric records lost at stop: the database and the spool refused them", self._queued)
        async with self._cycle_lock:
            if self._inflight is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._inflight), self.write_timeout_s)
                await self._settle()
            if self._spawning is not None:
                self._spawning.cancel()
                with contextlib.suppress(BaseException):
                    await self._spawning
                self._spawning = None
            if self._worker is not None:
                await self._worker.stop(grace_s=self.write_timeout_s)
                self._worker = None
        self._spool_thread.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop without flushing, as a crash would (for tests of crash recovery)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._group.clear()
        self._queue.clear()
        self._queued = 0
        if self._spawning is not None:
            self._spawning.cancel()
        if self._worker is not None:
            self._worker.kill()
        self._spool_thread.shutdown(wait=False, cancel_futures=True)

    async def wait_until(
        self, predicate: Callable[[WriterStats], bool], timeout: float | None = None
    ) -> WriterStats:
        """Wait until `predicate(stats)` holds after some cycle (or now); returns those stats."""

        async def _wait() -> WriterStats:
            async with self._changed:
                while not predicate(self.stats):
                    await self._changed.wait()
                return self.stats

        return await asyncio.wait_for(_wait(), timeout)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval_s)
            try:
                await asyncio.shield(self.flush())  # `stop()` cancels between cycles, not inside one
            except Exception:  # never let the writer die; the next cycle retries
                log.exception("metrics writer cycle failed")

    # -- one cycle -----------------------------------------------------------------------------

    async def flush(self) -> WriterStats:
        """Run one cycle now: write everything queued, or spool it if the database is unavailable."""
        async with self._cycle_lock:
            self._seal_group()
            batch = list(self._queue)
            self._queue.clear()
            self._queued = 0
            try:
                await self._cycle(batch)
            except BaseException:
                await asyncio.shield(self._to_spool(batch))  # never lose an emitted record
                raise
            finally:
                self._stats = replace(self._stats, cycles=self._stats.cycles + 1)
        async with self._changed:
            self._changed.notify_all()
        return self.stats

    async def _cycle(self, batch: list[tuple[bytes, int]]) -> None:
        await self._settle()
        worker = await self._ready_worker()
        if self._inflight is not None or worker is None:
            self._unavailable()
            await self._to_spool(batch)
            return
        if not batch and not self.spool.depth and self._stats.recovered:
            return
        attempt = worker.submit(
            Attempt(
                id=next(self._attempt_ids),
                spool_end=self.spool.size,
                recover=not self._stats.recovered,
                live_calls=frozenset(self._live_calls),
                groups=[group for group, _ in batch],
            )
        )
        attempt.add_done_callback(_consume_exception)
        self._inflight = attempt  # until it answers: no other attempt, no spool consumed
        try:
            result = await asyncio.wait_for(asyncio.shield(attempt), self.write_timeout_s)
        except TimeoutError:
            log.warning("metrics database slower than %.1fs: spooling", self.write_timeout_s)
            self._unavailable()
            await self._to_spool(batch)
            return
        except WorkerDied as exc:
            self._inflight = None
            log.warning("%s: spooling, starting another", exc)
            self._unavailable()
            await self._to_spool(batch)
            return
        self._inflight = None
        await self._account(result)
        if result.ok:  # nothing waits in memory now, whatever the spool's disk says
            self._stats = replace(self._stats, db_available=True, spool_full=False)
            return
        if result.unavailable:
            log.warning("metrics database unavailable (%s): spooling", result.error)
        else:
            log.error("metrics database attempt failed (%s): spooling", result.error)
        self._unavailable()
        await self._to_spool(batch[result.groups_done :])

    def _unavailable(self) -> None:
        self._stats = replace(self._stats, db_failures=self._stats.db_failures + 1, db_available=False)

    async def _settle(self) -> None:
        """Account for a timed-out attempt that has finished since (its batch is already spooled)."""
        attempt = self._inflight
        if attempt is None or not attempt.done():
            return
        self._inflight = None
        if not attempt.cancelled() and attempt.exception() is None:
            await self._account(attempt.result())

    async def _account(self, result: Result) -> None:
        if result.spool_offset:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._spool_thread, self.spool.consume, result.spool_offset)
        self._stats = replace(
            self._stats,
            written=self._stats.written + result.written,
            rejected=self._stats.rejected + result.rejected,
            closed_on_restart=self._stats.closed_on_restart + result.closed,
            recovered=self._stats.recovered or result.recovered,
        )

    async def _to_spool(self, batch: Sequence[tuple[bytes, int]]) -> None:
        """Append groups to the spool: decoding and JSON encoding here a group at a time (yielding
        between groups), the write and fsync in a thread."""
        if not batch:
            return
        parts: list[bytes] = []
        for i, (group, _) in enumerate(batch):
            if i:
                await asyncio.sleep(0)
            parts.append(encode(pickle.loads(group)))
        count = sum(n for _, n in batch)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._spool_thread, self.spool.append_encoded, b"".join(parts), count)
        except OSError as exc:
            self._spool_failed(batch, exc)
            return
        if self._stats.spool_full:
            log.warning("metrics spool %s writable again (%d records)", self.spool.path, self.spool.depth)
        self._stats = replace(self._stats, spooled=self._stats.spooled + count, spool_full=False)

    def _spool_failed(self, batch: Sequence[tuple[bytes, int]], exc: OSError) -> None:
        """The disk would not take the batch: keep it in memory, first in line, and say so loudly."""
        if not self._stats.spool_full:
            log.error(
                "metrics spool %s cannot grow (%s): it is left as it was, %d records wait in memory "
                "(beyond %d the oldest are dropped) until the database or the disk takes them",
                self.spool.path,
                exc,
                self._queued + sum(n for _, n in batch),
                self._max_queue,
            )
        self._stats = replace(self._stats, spool_full=True, spool_errors=self._stats.spool_errors + 1)
        self._queue.extendleft(reversed(batch))
        self._queued += sum(n for _, n in batch)
        self._bound_queue()

    def _track_live_call(self, record: Record) -> None:
        if isinstance(record, InsertRow) and record.values.get("ended_at") is None:
            self._live_calls.add(record.uid)
        elif isinstance(record, UpdateRow) and record.values.get("ended_at") is not None:
            self._live_calls.discard(record.uid)

    # -- the database process ------------------------------------------------------------------

    async def _ready_worker(self) -> _WorkerProcess | None:
        """The running worker; else start one (waiting for it only the first time) and return None."""
        if self._worker is not None:
            if self._worker.alive:
                return self._worker
            self._worker = None
        if self._spawning is None:
            if time.monotonic() < self._next_spawn_at:
                return None
            if self._spawned_once:
                self._stats = replace(self._stats, worker_restarts=self._stats.worker_restarts + 1)
            self._spawning = asyncio.create_task(self._spawn(), name="metrics-db-spawn")
            if not self._spawned_once:
                self._spawned_once = True
                await asyncio.wait({self._spawning})
        if not self._spawning.done():
            return None
        spawning, self._spawning = self._spawning, None
        try:
            self._worker = spawning.result()
        except Exception as exc:
            self._spawn_failures += 1
            delay = min(_MAX_RESPAWN_DELAY_S, 0.5 * 2**self._spawn_failures)
            self._next_spawn_at = time.monotonic() + delay
            log.error("metrics database process failed to start (%s); retrying in %.1fs", exc, delay)
            return None
        self._spawn_failures = 0
        return self._worker

    async def _spawn(self) -> _WorkerProcess:
        worker = await _WorkerProcess.spawn(self._config)
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.start_timeout_s)
        except BaseException:
            worker.kill()
            raise
        log.info("metrics database process %d ready", worker.pid)
        return worker


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["DEFAULT_BATCH_INTERVAL_S", "MetricsWriter", "WorkerDied", "WriterStats", "default_instance"]
