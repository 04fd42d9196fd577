"""The local spool: an append-only JSON-lines file of records the database could not take yet.

`append` writes whole lines and fsyncs once per batch, so after a crash the file holds every batch
that `append` returned from. A torn last line (crash mid-write) is cut off when the spool is opened.
A batch the disk cannot take (full: ENOSPC, quota, I/O error) raises `OSError` and leaves the file
as it was: the part that did get written is cut off again, so no torn line ends up between records
when later batches fit (`append_whole`).

One process owns the file: the audio process's writer appends to it and, once records are in the
database, `consume`s them from the front (records appended meanwhile are kept). The database process
only reads it, with `read_lines` up to an end offset the owner gives it, and never while the owner
consumes (the writer runs one database attempt at a time and consumes only after it has answered).
All methods are blocking: call them from a worker thread, not the event loop (`encode` excepted: it is
pure CPU work on a bounded number of records).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from gateway.metrics.records import Record, record_from_json, record_to_json

log = logging.getLogger(__name__)


def encode(records: Sequence[Record]) -> bytes:
    """Records as spool lines (one JSON object per line)."""
    return "".join(record_to_json(r) + "\n" for r in records).encode()


def read_lines(
    path: Path, offset: int = 0, max_records: int = 1000, end: int | None = None
) -> tuple[list[bytes], int]:
    """Up to `max_records` complete lines from byte `offset` (not past `end`), and the offset after them.
    Read-only: safe while the owner appends."""
    lines: list[bytes] = []
    if not path.exists():
        return lines, offset
    with path.open("rb") as f:
        f.seek(offset)
        while len(lines) < max_records and (end is None or offset < end):
            line = f.readline()
            if not line.endswith(b"\n") or (end is not None and offset + len(line) > end):
                break
            offset += len(line)
            lines.append(line)
    return lines, offset


def decode_lines(path: Path, lines: Sequence[bytes]) -> list[Record]:
    """Spool lines as records, skipping (and logging) any that cannot be read."""
    records: list[Record] = []
    for line in lines:
        try:
            records.append(record_from_json(line.decode()))
        except (ValueError, KeyError, TypeError):
            log.error("spool %s: skipping an unreadable line: %r", path, line[:200])
    return records


def append_whole(path: Path, payload: bytes) -> None:
    """Append `payload` (whole lines) and fsync; all of it or nothing: if the write fails part-way
    (a full disk), the file is cut back to its old end and the `OSError` raised."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # cutting frees space: it works on a full disk
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._depth, self._size = self._open_existing()

    @property
    def depth(self) -> int:
        """Records waiting in the spool."""
        return self._depth

    @property
    def size(self) -> int:
        """Bytes of complete lines in the spool (the end offset of its last record)."""
        return self._size

    def _open_existing(self) -> tuple[int, int]:
        if not self.path.exists():
            return 0, 0
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete != len(data):
            log.warning("spool %s: dropping a torn last line (%d bytes)", self.path, len(data) - complete)
            with self.path.open("r+b") as f:
                f.truncate(complete)
                os.fsync(f.fileno())
        return data[:complete].count(b"\n"), complete

    def append(self, records: Sequence[Record]) -> None:
        if records:
            self.append_encoded(encode(records), len(records))

    def append_encoded(self, payload: bytes, count: int) -> None:
        """Append `count` records already `encode`d into `payload`."""
        if not payload:
            return
        with self._lock:
            append_whole(self.path, payload)
            self._depth += count
            self._size += len(payload)

    def read(self, offset: int = 0, max_records: int = 1000) -> tuple[list[Record], int]:
        """Up to `max_records` records starting at byte `offset`, and the offset after them."""
        with self._lock:
            lines, offset = read_lines(self.path, offset, max_records)
        return decode_lines(self.path, lines), offset

    def consume(self, end_offset: int) -> None:
        """Drop everything before byte `end_offset` (it is in the database now)."""
        with self._lock:
            if not self.path.exists() or end_offset <= 0:
                return
            size = self.path.stat().st_size
            if end_offset >= size:
                self.path.unlink()
                self._depth = self._size = 0
                return
            with self.path.open("rb") as f:
                f.seek(end_offset)
                tail = f.read()
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("wb") as f:
                f.write(tail)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._depth = tail.count(b"\n")
            self._size = len(tail)


__all__ = ["Spool", "append_whole", "decode_lines", "encode", "read_lines"]
