"""A caller who holds the call and presses a key (sipp: re-INVITE sendonly/inactive, RFC 4733 events
from sipp's own DTMF capture): the call's clock stays on wall-clock time through the hold, and the
digit is in the call's timeline, its database rows and the agent's context."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import espeak, place
from session_fixtures import ScriptLLM
from sip_fixtures import gateway_serve, run_sipp
from sqlalchemy import select
from test_sip_refusals import full_gateway, wait_for

from gateway.agents.session import Backends, CallSession, Detectors
from gateway.audio.wav import write_wav
from gateway.calls import CallEnded, CallInfo, Dtmf, InboundFrame, InboundQueue, TransportEvent
from gateway.config.loader import parse_agent_yaml
from gateway.edges.sip.pcap import wav_to_pcap
from gateway.metrics.database import create_db_engine
from gateway.metrics.queries import load_call
from gateway.metrics.tables import Call, CallEvent, SpeechSegment
from gateway.metrics.timeline import render_timeline
from gateway.turns.silero import SileroModel

DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # shipped with Debian's sip-tester
TALK, HOLD = 1.5, 3.0  # the scenario's pauses (uac_hold.xml)
SPEECH_AT = 0.2  # in caller.pcap


def _captures(tmp_path: Path) -> None:
    speech = espeak("hello there", voice="en-gb")
    pcm = place(1.2, [(SPEECH_AT, speech)])
    write_wav(tmp_path / "caller.wav", pcm.astype(np.int16), 8000)
    wav_to_pcap(tmp_path / "caller.wav", tmp_path / "caller.pcap", "PCMU")
    shutil.copy(DTMF_PCAP, tmp_path / "dtmf.pcap")


def _hold_call(tmp_path: Path, port: int, hold: str, user: str) -> None:
    res = run_sipp(
        tmp_path, port, "uac_hold.xml", "-s", user, "-m", "1", "-key", "pt", "0", "-key", "codec", "PCMU",
        "-key", "hold", hold, timeout=40,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("hold", ["sendonly", "inactive"])
def test_call_clock_runs_through_a_hold(tmp_path: Path, hold: str) -> None:
    _captures(tmp_path)
    with gateway_serve(tmp_path, "--set", "sip.codecs=[PCMU]") as gw:
        _hold_call(tmp_path, gw.port, hold, "dental")
        (call,) = gw.results(1)
    frames = call["frames"]
    loud = [t for t, rms, _ in frames if rms > 1000]
    second = next(t for t in loud if t > loud[0] + 1.0)
    # after the hold, the caller's speech is where the wall clock has it: the talk, the hold and two
    # re-INVITE round trips after the first (on caller-audio time it would come HOLD s early)
    assert second - loud[0] >= TALK + HOLD - 0.3, (loud[0], second)
    assert second - loud[0] <= TALK + HOLD + 1.5
    # 20 ms a frame, no gap in the sequence
    ts = [t for t, _, _ in frames]
    assert max(np.diff(ts)) < 0.03
    ((t, digit),) = call["dtmf"]
    assert digit == "1" and second + TALK - 0.5 <= t <= second + TALK + 1.0


@pytest.mark.slow
def test_dtmf_and_hold_in_the_database(tmp_path: Path, migrated_url: str) -> None:
    _captures(tmp_path)
    with full_gateway(tmp_path, migrated_url) as gw:
        _hold_call(tmp_path, gw.sip_port, "sendonly", "plain")
        engine = create_db_engine(migrated_url)
        try:

            def ended() -> list[Call]:
                with engine.connect() as conn:
                    return list(conn.execute(select(Call).where(Call.ended_at.is_not(None))).all())

            assert wait_for(ended)
            with engine.connect() as conn:
                events = conn.execute(
                    select(CallEvent.kind, CallEvent.value, CallEvent.detail, CallEvent.offset_s)
                ).all()
                segments = conn.execute(
                    select(SpeechSegment.start_s)
                    .where(SpeechSegment.speaker == "caller")
                    .order_by(SpeechSegment.start_s)
                ).all()
            timeline = render_timeline(load_call(engine, "last"))  # type: ignore[arg-type]
        finally:
            engine.dispose()
        log = gw.log()
    assert "CALLER pressed 1 (rfc4733)" in timeline
    ((kind, value, detail, offset),) = events
    assert (kind, value, detail) == ("dtmf", "1", "rfc4733")
    starts = [s for (s,) in segments]
    assert len(starts) >= 2, starts
    # the caller's second utterance and the key press are on wall-clock time, after the hold
    assert starts[-1] - starts[0] >= TALK + HOLD - 0.3, starts
    assert starts[-1] + TALK - 0.6 <= offset <= starts[-1] + TALK + 1.2
    assert "DTMF 1 at" in log and "(rfc4733)" in log


class _Transport:
    def __init__(self, events: list[TransportEvent]) -> None:
        self.info = CallInfo("dtmf-1", "replay", "dental")
        self._queue = InboundQueue(1000)
        for event in events:
            self._queue.put(event)

    def events(self) -> AsyncIterator[TransportEvent]:
        return self._queue.events()

    def play(self, pcm: np.ndarray) -> None:
        pass

    def clear(self) -> None:
        pass

    def unheard_seconds(self) -> float:
        return 0.0

    async def hangup(self, reason: str = "agent_hangup") -> None:
        pass


async def test_dtmf_reaches_the_agent() -> None:
    silence = np.zeros(160, np.int16)
    events: list[TransportEvent] = [InboundFrame(i * 0.02, silence) for i in range(50)]
    events.insert(25, Dtmf(0.5, "5", "rfc4733"))
    events.append(CallEnded("caller_hangup"))
    agent = parse_agent_yaml("agent: keys\n").config
    session = CallSession(
        _Transport(events), agent, Detectors(vad=SileroModel()), Backends(llm=ScriptLLM([]))
    )
    assert await asyncio.wait_for(session.run(), 30) == "caller_hangup"
    assert session.dtmf == ["5"] and session.log.dtmf == ["5"]
    assert [(m.role, m.content) for m in session.messages] == [("user", "[keypad] 5")]
