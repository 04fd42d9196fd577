"""`gateway replay --db URL`: each replayed file becomes a call with the same rows a live call writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.calls import CallInfo
from gateway.metrics.database import create_db_engine, resolve_db_url
from gateway.metrics.persist import apply_records
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import Record
from gateway.metrics.schema import check_schema_current
from gateway.replay import ReplayResult


class ReplaySink:
    def __init__(self, url: str | None, agent: str) -> None:
        self.engine = create_db_engine(resolve_db_url(url))
        check_schema_current(self.engine)
        self.agent = agent
        self.call_ids: list[str] = []

    def record(self, result: ReplayResult, sample_rate: int = 8000) -> str:
        """Write one replayed file as a call (edge `replay`); returns its call_id."""
        records: list[Record] = []
        call_id = f"replay:{Path(result.file).name}:{uuid.uuid4().hex[:8]}"
        info = CallInfo(call_id, "replay", self.agent, caller=result.file, sample_rate=sample_rate)
        recorder = CallRecorder(info, records.append, instance="replay")
        start = datetime.now(UTC)
        recorder.started(at=start)
        recorder.answered(at=start)
        recorder.on_events(sorted(result.events, key=lambda e: e.t))
        recorder.usage("bargein", "local", requests=result.bargein_requests)
        recorder.ended("replay_end", at=start + timedelta(seconds=result.duration))
        with self.engine.begin() as conn:
            apply_records(conn, records)
        self.call_ids.append(call_id)
        return call_id

    def close(self) -> None:
        self.engine.dispose()
