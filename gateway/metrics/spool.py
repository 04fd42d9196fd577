"""The local spool: an append-only JSON-lines file of records the database could not take yet.

`append` writes whole lines and fsyncs once per batch, so after a crash the file holds every batch
that `append` returned from. A torn last line (crash mid-write) is cut off when the spool is opened.
Readers take records from the front (`read`) and, once those are in the database, `consume` drops
them; records appended meanwhile (by the event loop, while a flush runs in the DB thread) are kept.
All methods are thread-safe and blocking: call them from a worker thread, not the event loop.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from gateway.metrics.records import Record, record_from_json, record_to_json

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._depth = self._open_existing()

    @property
    def depth(self) -> int:
        """Records waiting in the spool."""
        return self._depth

    def _open_existing(self) -> int:
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete != len(data):
            log.warning("spool %s: dropping a torn last line (%d bytes)", self.path, len(data) - complete)
            with self.path.open("r+b") as f:
                f.truncate(complete)
                os.fsync(f.fileno())
        return data[:complete].count(b"\n")

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        payload = "".join(record_to_json(r) + "\n" for r in records).encode()
        with self._lock, self.path.open("ab") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
            self._depth += len(records)

    def read(self, offset: int = 0, max_records: int = 1000) -> tuple[list[Record], int]:
        """Up to `max_records` records starting at byte `offset`, and the offset after them."""
        records: list[Record] = []
        with self._lock:
            if not self.path.exists():
                return records, offset
            with self.path.open("rb") as f:
                f.seek(offset)
                while len(records) < max_records:
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break
                    offset += len(line)
                    try:
                        records.append(record_from_json(line.decode()))
                    except (ValueError, KeyError, TypeError):
                        log.error("spool %s: skipping an unreadable line: %r", self.path, line[:200])
        return records, offset

    def consume(self, end_offset: int) -> None:
        """Drop everything before byte `end_offset` (it is in the database now)."""
        with self._lock:
            if not self.path.exists() or end_offset <= 0:
                return
            size = self.path.stat().st_size
            if end_offset >= size:
                self.path.unlink()
                self._depth = 0
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


__all__ = ["Spool"]
