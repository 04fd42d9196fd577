"""The writer's database process when it cannot run: records spool, the writer keeps going."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.metrics.records import InsertRow
from gateway.metrics.writer import MetricsWriter

T0 = datetime(2026, 3, 5, tzinfo=UTC)


async def test_a_worker_that_cannot_start_means_spooling(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    writer = MetricsWriter("nosuchdialect://host/db", spool, instance="t", write_timeout_s=1)
    await writer.start()  # the process exits before it is ready: no exception here
    calls = [
        InsertRow("calls", {"call_id": f"c{i}", "edge": "sip", "agent": "a", "started_at": T0})
        for i in range(3)
    ]
    for call in calls:
        writer.emit(call)
    stats = await writer.flush()
    await writer.stop()
    assert writer.worker_pid is None
    assert (stats.spool_depth, stats.spooled, stats.written) == (3, 3, 0)
    assert not stats.db_available and stats.db_failures >= 2
    assert [line for line in spool.read_text().splitlines() if '"call_id":"c' in line] != []
    assert len(spool.read_text().splitlines()) == 3


def test_a_full_queue_drops_the_oldest_groups(tmp_path: Path) -> None:
    """Emits are grouped and pickled as they come; past `max_queue` the oldest groups go (counted)."""
    writer = MetricsWriter(
        f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "s.jsonl", max_queue=100, group_size=10
    )
    for i in range(250):
        writer.emit(InsertRow("calls", {"call_id": f"c{i}", "edge": "sip", "agent": "a", "started_at": T0}))
    stats = writer.stats
    assert stats.emitted == 250
    assert writer.pending == 100 and stats.dropped == 150
    assert writer.worker_pid is None  # no process until the first cycle
