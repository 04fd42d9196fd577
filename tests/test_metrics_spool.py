"""The spool file: JSON-lines round trip, torn last lines, consuming the front while appends go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.metrics.records import InsertRow, UpdateRow, record_from_json, record_to_json
from gateway.metrics.spool import Spool

T0 = datetime(2026, 3, 6, tzinfo=UTC)


def event(i: int) -> InsertRow:
    return InsertRow(
        "interruption_events",
        {
            "occurred_at": T0 + timedelta(seconds=i),
            "offset_s": float(i),
            "kind": "backchannel",
            "mode": "vad",
        },
        call_uid="call",
    )


@given(
    text=st.text(),
    offset=st.floats(allow_nan=False, allow_infinity=False),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_records_round_trip(text: str, offset: float, seconds: int) -> None:
    when = T0 + timedelta(seconds=seconds)
    ins = InsertRow(
        "interruption_events",
        {
            "occurred_at": when,
            "offset_s": offset,
            "kind": "interruption",
            "mode": "vad",
            "agent_text_heard": text,
        },
        call_uid="c",
    )
    upd = UpdateRow("calls", "u", {"ended_at": when, "end_reason": text})
    for record in (ins, upd):
        line = record_to_json(record)
        assert "\n" not in line
        assert record_from_json(line) == record


def test_append_read_consume(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.append([event(i) for i in range(5)])
    records, offset = spool.read(0, max_records=3)
    assert [r.values["offset_s"] for r in records] == [0, 1, 2]
    spool.append([event(99)])  # appended while a flush is under way
    spool.consume(offset)
    assert spool.depth == 3
    records, _ = spool.read(0, max_records=100)
    assert [r.values["offset_s"] for r in records] == [3, 4, 99]
    _, end = spool.read(0, max_records=100)
    spool.consume(end)
    assert spool.depth == 0 and not spool.path.exists()


def test_torn_last_line_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    Spool(path).append([event(1), event(2)])
    with path.open("ab") as f:
        f.write(b'{"op":"insert","tab')  # a crash in the middle of a write
    spool = Spool(path)
    assert spool.depth == 2
    spool.append([event(3)])
    records, _ = spool.read()
    assert [r.values["offset_s"] for r in records] == [1, 2, 3]


def test_reopened_spool_knows_its_depth(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "s.jsonl"
    Spool(path).append([event(i) for i in range(7)])
    assert Spool(path).depth == 7
