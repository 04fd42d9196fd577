"""The metrics writer's database process: all SQLAlchemy and driver work, away from the audio's GIL.

    python -m gateway.metrics.dbworker      (started by MetricsWriter, spoken to over stdin/stdout)

Theory of operation
-------------------
* The audio process's `MetricsWriter` starts this process and talks to it over a pipe: frames of a
  4-byte big-endian length and a pickle. The first frame down is a `WorkerConfig`; the worker answers
  `Ready` once its engine exists. Then each `Attempt` gets exactly one `Result`, in order; `Stop` (or the
  pipe closing, e.g. because the audio process died) ends the process.
* An attempt is one write cycle of the writer, done in this order: apply the spool's records up to
  `spool_end` (in chunks of `chunk_size`, one transaction each), close calls a crashed run left open
  (when `recover` is set), then apply the batch: its groups (each a pickled list of records) joined
  into transactions of about `chunk_size` records. Records keep their order: the spool holds older
  records than the batch.
* The worker never writes the spool: it reads it (read-only, up to `spool_end`) and reports in
  `Result.spool_offset` how far its records are committed; the writer consumes them. It does write
  `<spool>.rejected`: records the database refused (not an outage) are retried one by one and those
  that still fail are appended there.
* A `Result` reports what committed even when the attempt failed part-way (`error`, and `unavailable`
  when the database could not be reached), so the writer spools only the batch groups that did not.
* stdout carries only frames: fd 1 is pointed at stderr before anything else runs, so a stray print
  cannot corrupt the protocol. SIGINT is ignored (a Ctrl-C on `gateway serve` reaches the whole
  process group); the writer stops the worker through the pipe. The worker lowers its own priority
  (`nice`), so on a busy machine the scheduler runs the audio process first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from gateway.metrics.database import create_db_engine
from gateway.metrics.persist import apply_records, close_open_calls, is_unavailable
from gateway.metrics.records import Record, record_to_json
from gateway.metrics.spool import append_whole, decode_lines, read_lines

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


@dataclass(frozen=True)
class WorkerConfig:
    url: str
    spool_path: str
    rejected_path: str
    instance: str
    chunk_size: int = 200
    connect_timeout_s: float = 3.0
    busy_timeout_ms: int = 5000
    log_level: int = logging.WARNING
    nice: int = 10  # added to the process's niceness: under CPU contention, audio goes first


@dataclass(frozen=True)
class Ready:
    pid: int


@dataclass(frozen=True)
class Attempt:
    id: int
    spool_end: int  # apply spool records before this byte offset
    recover: bool  # close calls a crashed run left open, except `live_calls`
    live_calls: frozenset[str]
    groups: list[bytes]  # each a pickled list[Record]


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Result:
    id: int
    written: int = 0  # records committed (spool and batch)
    rejected: int = 0  # records refused and set aside in <spool>.rejected
    closed: int = 0  # calls closed with end_reason 'gateway_restart'
    recovered: bool = False  # the recovery step committed
    spool_offset: int = 0  # spool records before this offset are committed
    groups_done: int = 0  # batch groups committed
    error: str | None = None
    unavailable: bool = False  # `error` was an outage (unreachable, timed out), not a refusal

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Progress:
    written: int = 0
    rejected: int = 0
    closed: int = 0
    recovered: bool = False
    spool_offset: int = 0
    groups_done: int = 0


def encode_frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=PICKLE_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(stream: IO[bytes]) -> object | None:
    """The next message, or None at the end of the stream."""
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    payload = _read_exact(stream, HEADER.unpack(header)[0])
    return None if payload is None else pickle.loads(payload)


class DbWorker:
    """The blocking half of the writer: one engine, one attempt at a time."""

    def __init__(self, config: WorkerConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.spool_path = Path(config.spool_path)
        self.rejected_path = Path(config.rejected_path)
        self.engine = engine or create_db_engine(
            config.url, connect_timeout_s=config.connect_timeout_s, busy_timeout_ms=config.busy_timeout_ms
        )

    def close(self) -> None:
        self.engine.dispose()

    def attempt(self, request: Attempt) -> Result:
        progress = _Progress()
        try:
            self._run(request, progress)
        except Exception as exc:
            unavailable = is_unavailable(exc)
            if not unavailable:
                log.exception("metrics attempt %d failed", request.id)
            return self._result(
                request, progress, error=f"{type(exc).__name__}: {exc}", unavailable=unavailable
            )
        return self._result(request, progress)

    def _result(
        self, request: Attempt, p: _Progress, error: str | None = None, unavailable: bool = False
    ) -> Result:
        return Result(
            request.id,
            p.written,
            p.rejected,
            p.closed,
            p.recovered,
            p.spool_offset,
            p.groups_done,
            error,
            unavailable,
        )

    def _run(self, request: Attempt, progress: _Progress) -> None:
        size = self.config.chunk_size
        while progress.spool_offset < request.spool_end:
            lines, next_offset = read_lines(self.spool_path, progress.spool_offset, size, request.spool_end)
            if next_offset == progress.spool_offset:
                break
            self._apply(decode_lines(self.spool_path, lines), progress)
            progress.spool_offset = next_offset
        if request.recover:
            with self.engine.begin() as conn:
                progress.closed = len(
                    close_open_calls(conn, self.config.instance, keep=set(request.live_calls))
                )
            progress.recovered = True
        records: list[Record] = []
        groups = 0
        for i, group in enumerate(request.groups):
            records.extend(pickle.loads(group))
            groups += 1
            if len(records) >= size or i == len(request.groups) - 1:
                self._apply(records, progress)
                progress.groups_done += groups
                records, groups = [], 0

    def _apply(self, records: list[Record], progress: _Progress) -> None:
        """Apply records in one transaction; on a refusal that is not an outage, one by one."""
        if not records:
            return
        try:
            with self.engine.begin() as conn:
                apply_records(conn, records)
            progress.written += len(records)
            return
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.error("metrics batch refused (%s); retrying record by record", exc)
        for record in records:
            try:
                with self.engine.begin() as conn:
                    apply_records(conn, [record])
                progress.written += 1
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.error("metrics record refused, kept in %s: %s", self.rejected_path, exc)
                append_whole(self.rejected_path, (record_to_json(record) + "\n").encode())
                progress.rejected += 1


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answer the writer until it says `Stop` or closes the pipe."""
    config = read_frame(requests)
    if not isinstance(config, WorkerConfig):
        raise SystemExit("metrics dbworker: expected a WorkerConfig first")
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s metrics-db[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    if config.nice > 0:
        os.nice(config.nice)
    worker = DbWorker(config)
    try:
        replies.write(encode_frame(Ready(os.getpid())))
        replies.flush()
        while True:
            message = read_frame(requests)
            if message is None or isinstance(message, Stop):
                return
            if not isinstance(message, Attempt):
                raise SystemExit(f"metrics dbworker: unexpected message {type(message).__name__}")
            replies.write(encode_frame(worker.attempt(message)))
            replies.flush()
    finally:
        worker.close()


def main() -> None:
    # Ctrl-C and a stop signal sent to the whole process group (a terminal, systemd) are for the
    # gateway, which flushes and then ends this process by closing its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # from here on, fd 1 is stderr: only `replies` reaches the writer
    with contextlib.suppress(BrokenPipeError):  # the writer went away
        serve(sys.stdin.buffer, replies)


__all__ = [
    "Attempt",
    "DbWorker",
    "Ready",
    "Result",
    "Stop",
    "WorkerConfig",
    "encode_frame",
    "read_frame",
    "serve",
]


if __name__ == "__main__":
    # Run the imported module's `main`, not this `__main__` copy: the writer pickles
    # `gateway.metrics.dbworker` classes, and `serve` checks messages against those.
    from gateway.metrics import dbworker

    dbworker.main()
