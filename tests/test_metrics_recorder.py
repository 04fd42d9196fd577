"""CallRecorder without a database: which records a call's life and its engine events become."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.calls import CallInfo
from gateway.metrics.recorder import CallRecorder
from gateway.metrics.records import InsertRow, Record, UpdateRow
from gateway.turns.events import (
    Backchannel,
    EndOfTurn,
    FalseInterruption,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    UserSpeechEnd,
    UserSpeechStart,
)

T0 = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


def make() -> tuple[CallRecorder, list[Record]]:
    out: list[Record] = []
    rec = CallRecorder(
        CallInfo("abc@host", "sip", "dental", "+1", "+2", "PCMA", 8000), out.append, instance="gw"
    )
    rec.started(T0)
    rec.answered(T0 + timedelta(seconds=2))
    return rec, out


def rows(out: list[Record], table: str) -> list[InsertRow]:
    return [r for r in out if isinstance(r, InsertRow) and r.table == table]


def test_call_life() -> None:
    rec, out = make()
    rec.usage("stt", "pocketsphinx", requests=1, audio_s=3.5)
    rec.usage("stt", "pocketsphinx", requests=2, audio_s=1.5)
    rec.ended("caller_hangup", T0 + timedelta(seconds=30))
    rec.ended("error")  # second end is ignored
    call = rows(out, "calls")[0]
    assert call.uid == rec.uid and call.values["call_id"] == "abc@host" and call.values["codec"] == "PCMA"
    assert call.values["started_at"] == T0 and call.values["instance"] == "gw"
    updates = [r for r in out if isinstance(r, UpdateRow)]
    assert [u.values for u in updates] == [
        {"answered_at": T0 + timedelta(seconds=2)},
        {"ended_at": T0 + timedelta(seconds=30), "end_reason": "caller_hangup"},
    ]
    (usage,) = rows(out, "usage")
    assert usage.values["requests"] == 3 and usage.values["audio_s"] == 5.0 and usage.call_uid == rec.uid


def test_interruption_row_from_one_engine_step() -> None:
    rec, out = make()
    rec.on_events(
        [
            Interruption(t=7.5, onset=7.1, latency_ms=400, mode="adaptive", probability=0.77, requests=4),
            PausePlayout(t=7.5),
        ],
        agent_text_heard="We are open from",
    )
    (row,) = rows(out, "interruption_events")
    v = row.values
    assert v["occurred_at"] == T0 + timedelta(seconds=9.5)  # answered_at + t
    assert (v["offset_s"], v["onset_s"], v["kind"], v["mode"]) == (7.5, 7.1, "interruption", "adaptive")
    assert (v["probability"], v["detection_delay_ms"], v["requests"]) == (0.77, 400, 4)
    assert v["overlap_s"] == pytest.approx(0.4)
    assert (v["agent_action"], v["agent_text_heard"]) == ("paused", "We are open from")
    assert rows(out, "usage") == []  # usage is written when the call ends
    rec.ended("caller_hangup")
    assert {"service": "bargein", "requests": 4}.items() <= rows(out, "usage")[0].values.items()


@pytest.mark.parametrize(
    ("follow_ups", "final_action", "extra_kinds"),
    [
        ([FalseInterruption(t=9.0, resumed=True), ResumePlayout(t=9.0)], "resumed", ["resumed"]),
        ([StopPlayout(t=8.2)], "stopped", []),
        ([StopPlayout(t=8.2), ResumePlayout(t=9.0)], "stopped", []),  # a stop is final
        ([FalseInterruption(t=9.0, resumed=False)], "paused", ["false_interruption"]),
    ],
)
def test_agent_action_follows_the_outcome(
    follow_ups: list, final_action: str, extra_kinds: list[str]
) -> None:
    rec, out = make()
    rec.on_events(
        [Interruption(t=7.5, onset=7.1, latency_ms=400, mode="vad", fallback=True), PausePlayout(t=7.5)]
    )
    for event in follow_ups:
        rec.on_event(event)
    first = rows(out, "interruption_events")[0]
    assert first.values["mode"] == "fallback"
    actions = ["paused"] + [
        r.values["agent_action"] for r in out if isinstance(r, UpdateRow) and r.table == "interruption_events"
    ]
    assert actions[-1] == final_action
    later = rows(out, "interruption_events")[1:]
    assert [r.values["kind"] for r in later] == extra_kinds
    assert all(r.values["mode"] == "fallback" for r in later)


def test_backchannel_and_turn() -> None:
    rec, out = make()
    rec.on_events([UserSpeechStart(t=3.0)])
    rec.on_events(
        [UserSpeechEnd(t=3.4, duration=0.4), Backchannel(t=3.4, onset=3.0, duration=0.4, probability=0.2)]
    )
    rec.on_events([UserSpeechStart(t=5.0)])
    rec.on_events([UserSpeechEnd(t=6.0, duration=1.0)])
    rec.on_events([UserSpeechStart(t=6.4)])
    rec.on_events([UserSpeechEnd(t=7.0, duration=0.6)])
    rec.on_events([EndOfTurn(t=7.5, delay_ms=500, probability=0.8, transcript="book a cleaning")])
    rec.turn_latencies(llm_ttft_ms=350, response_latency_ms=1200)
    (bc,) = rows(out, "interruption_events")
    assert (bc.values["kind"], bc.values["overlap_s"], bc.values["agent_action"]) == (
        "backchannel",
        0.4,
        "continued",
    )
    assert bc.values["detection_delay_ms"] == pytest.approx(400)
    (turn,) = rows(out, "turns")
    # The turn spans the caller's utterances since the previous turn (the backchannel's included).
    expected = {"turn_index": 1, "user_start_s": 3.0, "user_end_s": 7.0, "eou_delay_ms": 500}
    assert expected.items() <= turn.values.items()
    assert turn.values["transcript"] == "book a cleaning" and turn.values["eou_probability"] == 0.8
    latency = [r for r in out if isinstance(r, UpdateRow) and r.table == "turns"]
    assert [(u.uid, u.values) for u in latency] == [
        (turn.uid, {"llm_ttft_ms": 350, "response_latency_ms": 1200})
    ]
    segments = [
        (r.values["speaker"], r.values["start_s"], r.values["end_s"]) for r in rows(out, "speech_segments")
    ]
    assert segments == [("caller", 3.0, 3.4), ("caller", 5.0, 6.0), ("caller", 6.4, 7.0)]


def test_misuse_is_an_error() -> None:
    out: list[Record] = []
    rec = CallRecorder(CallInfo("x", "sip", "a"), out.append)
    with pytest.raises(RuntimeError, match="started"):
        rec.on_event(Backchannel(t=1.0))
    rec.started(T0)
    with pytest.raises(RuntimeError, match="before any EndOfTurn"):
        rec.turn_latencies(llm_ttft_ms=1.0)
    with pytest.raises(ValueError, match="bad columns"):
        InsertRow("calls", {"no_such_column": 1})
    with pytest.raises(ValueError, match="need call_uid"):
        InsertRow("turns", {"turn_index": 1})
