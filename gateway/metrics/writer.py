"""The metrics writer: sessions `emit()` records; a task writes them in batches; audio never waits.

Theory of operation
-------------------
* `emit(record)` appends to an in-memory deque and returns. It never awaits and never touches the
  database, so a session may call it from its audio loop.
* Every `batch_interval_s` the writer task takes everything queued and runs one *cycle*:
  1. if a previous database attempt is still running (it timed out but its thread is stuck), the batch
     goes straight to the spool;
  2. otherwise one attempt runs in the writer's own DB thread: flush the spool (oldest first, in
     chunks, one transaction each), close calls a crashed run left open (once), then insert the batch
     in one transaction;
  3. if that attempt fails because the database is unreachable, or takes longer than
     `write_timeout_s`, the batch is appended to the spool (fsync'd) and the next cycle tries again.
* Records keep their order: nothing new reaches the database while older records wait in the spool.
* Exactly once: inserts carry unique `uid`s and use ON CONFLICT DO NOTHING; updates set fixed values.
  A batch that may or may not have committed (a timeout, a lost connection at commit) is spooled and
  re-applied later without harm.
* Records the database refuses (not an outage: e.g. a row for an unknown call) are retried one by one;
  those that still fail go to `<spool>.rejected` and are counted, so one bad record never blocks the rest.
* A crash loses what was queued in memory (at most one batch interval) and a batch whose commit was in
  flight. On start, this instance's calls with no `ended_at` are closed with `end_reason =
  'gateway_restart'` (after the spool is flushed, and never the calls live in this process).

* The DB thread writes in chunks of `chunk_size` rows (one transaction each) and sleeps `yield_s`
  between chunks, so the event loop's thread gets the GIL back quickly (bench/bench_db.py measures it).

Tests and operators observe the writer through `stats` and `await wait_until(predicate)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from gateway.metrics.persist import apply_records, close_open_calls, is_unavailable
from gateway.metrics.records import InsertRow, Record, UpdateRow, record_to_json
from gateway.metrics.spool import Spool

log = logging.getLogger(__name__)


DEFAULT_BATCH_INTERVAL_S = 0.5


def default_instance() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class WriterStats:
    emitted: int = 0
    written: int = 0  # records applied to the database (from the queue or the spool)
    spooled: int = 0  # records appended to the spool
    spool_depth: int = 0  # records waiting in the spool now
    rejected: int = 0  # records the database refused (kept in <spool>.rejected)
    dropped: int = 0  # records dropped because the in-memory queue was full
    cycles: int = 0
    db_failures: int = 0
    db_available: bool = True
    recovered: bool = False  # open calls from a previous run have been closed
    closed_on_restart: int = 0


class MetricsWriter:
    def __init__(
        self,
        engine: Engine,
        spool_path: str | os.PathLike[str],
        *,
        batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
        write_timeout_s: float = 5.0,
        max_queue: int = 200_000,
        chunk_size: int = 200,
        yield_s: float = 0.002,
        instance: str | None = None,
    ) -> None:
        self.engine = engine
        self.spool = Spool(spool_path)
        self.rejected_path = Path(f"{spool_path}.rejected")
        self.batch_interval_s = batch_interval_s
        self.write_timeout_s = write_timeout_s
        self.chunk_size = chunk_size
        self.yield_s = yield_s
        self.instance = instance if instance is not None else default_instance()
        self._queue: deque[Record] = deque()
        self._max_queue = max_queue
        self._live_calls: set[str] = set()
        self._stats = WriterStats(spool_depth=self.spool.depth)
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-db")
        self._spool_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-spool")
        self._inflight: asyncio.Future[tuple[int, int, int]] | None = None
        self._cycle_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # -- the sessions' side -------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Queue a record. Never blocks; drops the oldest record (counted) if the queue is full."""
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self._stats = replace(self._stats, dropped=self._stats.dropped + 1)
        self._queue.append(record)
        self._stats = replace(self._stats, emitted=self._stats.emitted + 1)

    @property
    def stats(self) -> WriterStats:
        return replace(self._stats, spool_depth=self.spool.depth)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover (flush the spool, close calls a crash left open) if the database answers, then run."""
        if self._task is not None:
            return
        await self.flush()
        self._task = asyncio.create_task(self._run(), name="metrics-writer")

    async def stop(self) -> None:
        """Stop the task and write (or spool) whatever is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._inflight is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._inflight), self.write_timeout_s)
        self._db_thread.shutdown(wait=False, cancel_futures=True)
        self._spool_thread.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop without flushing, as a crash would (for tests of crash recovery)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._queue.clear()
        self._db_thread.shutdown(wait=False, cancel_futures=True)
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
                await self.flush()
            except Exception:  # never let the writer die; the next cycle retries
                log.exception("metrics writer cycle failed")

    # -- one cycle -----------------------------------------------------------------------------

    async def flush(self) -> WriterStats:
        """Run one cycle now: write everything queued, or spool it if the database is unavailable."""
        async with self._cycle_lock:
            batch = list(self._queue)
            self._queue.clear()
            self._track_live_calls(batch)
            await self._cycle(batch)
            self._stats = replace(self._stats, cycles=self._stats.cycles + 1)
        async with self._changed:
            self._changed.notify_all()
        return self.stats

    async def _cycle(self, batch: list[Record]) -> None:
        if self._inflight is not None and not self._inflight.done():
            await self._to_spool(batch)
            return
        self._inflight = None
        if not batch and not self.spool.depth and self._stats.recovered:
            return
        loop = asyncio.get_running_loop()
        attempt = loop.run_in_executor(self._db_thread, self._db_attempt, batch, set(self._live_calls))
        try:
            written, closed, rejected = await asyncio.wait_for(asyncio.shield(attempt), self.write_timeout_s)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                log.warning("metrics database slower than %.1fs: spooling", self.write_timeout_s)
                self._inflight = attempt
                attempt.add_done_callback(_consume_exception)
            elif is_unavailable(exc):
                log.warning("metrics database unavailable (%s): spooling", type(exc).__name__)
            else:
                raise
            self._stats = replace(self._stats, db_failures=self._stats.db_failures + 1, db_available=False)
            await self._to_spool(batch)
            return
        self._stats = replace(
            self._stats,
            written=self._stats.written + written,
            rejected=self._stats.rejected + rejected,
            db_available=True,
            recovered=True,
            closed_on_restart=self._stats.closed_on_restart + closed,
        )

    async def _to_spool(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._spool_thread, self.spool.append, batch)
        self._stats = replace(self._stats, spooled=self._stats.spooled + len(batch))

    def _track_live_calls(self, batch: Sequence[Record]) -> None:
        for record in batch:
            if record.table != "calls":
                continue
            if isinstance(record, InsertRow) and record.values.get("ended_at") is None:
                self._live_calls.add(record.uid)
            elif isinstance(record, UpdateRow) and record.values.get("ended_at") is not None:
                self._live_calls.discard(record.uid)

    # -- the DB thread -------------------------------------------------------------------------

    def _db_attempt(self, batch: list[Record], live_calls: set[str]) -> tuple[int, int, int]:
        """Spool first, then recovery, then the batch. Returns (written, calls closed, rejected)."""
        written = rejected = closed = 0
        offset = 0
        while True:
            chunk, next_offset = self.spool.read(offset, self.chunk_size)
            if next_offset == offset:
                break
            w, r = self._apply(chunk)
            written, rejected, offset = written + w, rejected + r, next_offset
            time.sleep(self.yield_s)
        if offset:
            self.spool.consume(offset)
        if not self._stats.recovered:
            with self.engine.begin() as conn:
                closed = len(close_open_calls(conn, self.instance, keep=live_calls))
        for start in range(0, len(batch), self.chunk_size):
            if start:
                time.sleep(self.yield_s)  # let the event loop's thread have the GIL between chunks
            w, r = self._apply(batch[start : start + self.chunk_size])
            written, rejected = written + w, rejected + r
        return written, closed, rejected

    def _apply(self, records: list[Record]) -> tuple[int, int]:
        """Apply records in one transaction; on a refusal that is not an outage, one by one."""
        if not records:
            return 0, 0
        try:
            with self.engine.begin() as conn:
                apply_records(conn, records)
            return len(records), 0
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.error("metrics batch refused (%s); retrying record by record", exc)
        written = rejected = 0
        for record in records:
            try:
                with self.engine.begin() as conn:
                    apply_records(conn, [record])
                written += 1
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.error("metrics record refused, kept in %s: %s", self.rejected_path, exc)
                with self.rejected_path.open("a", encoding="utf-8") as f:
                    f.write(record_to_json(record) + "\n")
                rejected += 1
        return written, rejected


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["DEFAULT_BATCH_INTERVAL_S", "MetricsWriter", "WriterStats", "default_instance"]
