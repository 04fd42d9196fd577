"""The disk fills up under the SQLite database and the metrics spool: a real ENOSPC from a small
tmpfs this test mounts (it needs root, as the test machine and CI containers give; without it the
tests are skipped with that reason). The spool stops growing with a loud error, what is already
written (spool and database) stays intact, the records wait in memory and land once there is room."""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fault_fixtures import PAGE, fill, mounted_tmpfs

from gateway.calls import CallInfo
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import InsertRow
from gateway.metrics.schema import upgrade
from gateway.metrics.spool import Spool, read_lines
from gateway.metrics.writer import MetricsWriter

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "fs") as fs:
        yield fs


def _row(i: int) -> InsertRow:
    return InsertRow("calls", {"call_id": f"c{i}", "edge": "sip", "agent": "a" * 100, "started_at": T0})


def test_spool_on_a_full_disk_raises_and_keeps_its_lines_whole(small_fs: Path) -> None:
    spool = Spool(small_fs / "spool.jsonl")
    spool.append([_row(i) for i in range(10)])
    size, depth = spool.size, spool.depth
    filler = fill(small_fs, leave=PAGE)  # room for part of the next batch only: a torn write
    with pytest.raises(OSError) as failed:
        spool.append([_row(i) for i in range(10, 200)])  # about 40 KiB
    assert failed.value.errno == errno.ENOSPC
    assert (spool.size, spool.depth) == (size, depth)
    assert spool.path.stat().st_size == size  # what did get written was cut off again
    filler.unlink()
    spool.append([_row(i) for i in range(200, 205)])
    lines, _ = read_lines(spool.path, max_records=10_000)
    records, _ = spool.read(max_records=10_000)
    assert len(lines) == len(records) == 15  # every line whole: the old ten, then the new five
    assert [r.values["call_id"] for r in records] == [f"c{i}" for i in [*range(10), *range(200, 205)]]


async def test_writer_on_a_full_disk_holds_records_in_memory_and_writes_them_later(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path = small_fs / "gateway.db"
    url = f"sqlite:///{db_path}"
    upgrade(url)
    metrics = GatewayMetrics()
    writer = MetricsWriter(url, small_fs / "spool" / "test.jsonl", instance="test", busy_timeout_ms=50)
    metrics.watch_writer(lambda: writer.stats)
    await writer.start()
    try:
        first = CallRecorder(CallInfo("before", "sip", "dental"), writer.emit, instance="test")
        first.started(T0)
        first.ended("caller_hangup", T0 + timedelta(seconds=5))
        stats = await writer.flush()
        assert stats.written == 2 and stats.db_available  # the call, its end

        filler = fill(small_fs)  # the database's disk and the spool's are full now
        rec = CallRecorder(CallInfo("during", "sip", "dental"), writer.emit, instance="test")
        rec.started(T0)
        for i in range(300):  # big enough to need new database pages
            segment = {"speaker": "caller", "start_s": float(i), "end_s": i + 0.5}
            writer.emit(InsertRow("speech_segments", segment, rec.uid))
        rec.ended("caller_hangup", T0 + timedelta(seconds=400))
        emitted = writer.pending
        with caplog.at_level(logging.ERROR, logger="gateway.metrics.writer"):
            stats = await writer.flush()
            stats = await writer.flush()  # a second cycle: still full, one ERROR only
        assert not stats.db_available and stats.spool_full and stats.spool_errors == 2
        assert writer.pending == emitted and stats.dropped == 0  # nothing lost: held in memory
        assert not (small_fs / "spool" / "test.jsonl").exists() or stats.spool_depth == 0
        errors = [r for r in caplog.records if "cannot grow" in r.getMessage()]
        assert len(errors) == 1
        assert "gateway_db_spool_full 1.0" in metrics.exposition().decode()
        # What was written before is intact.
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT call_id, end_reason FROM calls").fetchall() == [
                ("before", "caller_hangup")
            ]

        filler.unlink()  # room again: the next cycle writes what waited
        stats = await writer.flush()
        assert stats.db_available and not stats.spool_full and writer.pending == 0
        assert "gateway_db_spool_full 0.0" in metrics.exposition().decode()
    finally:
        await writer.stop()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT call_id, end_reason FROM calls ORDER BY id").fetchall() == [
            ("before", "caller_hangup"),
            ("during", "caller_hangup"),
        ]
        assert conn.execute("SELECT count(*) FROM speech_segments").fetchone() == (300,)
