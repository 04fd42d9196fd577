"""CallSession end to end on a WAV caller: greeting, backchannel, barge-in, truncated context."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import espeak, place
from session_fixtures import GREETING, EspeakCliTTS, ScriptLLM, backchannel_then_barge_in, dental_agent_yaml

from gateway.agents.session import Backends, CallSession, Detectors
from gateway.calls import CallInfo
from gateway.config.loader import parse_agent_yaml
from gateway.edges.wavfile import WavCallerTransport
from gateway.replay import Replayer
from gateway.turns.heuristics import HeuristicBargeInDetector
from gateway.turns.silero import SileroModel

RATE = 8000
AGENT_YAML = dental_agent_yaml("dental", "instructions: You are a receptionist.\n")


@pytest.fixture(scope="module")
def detectors() -> Detectors:
    return Detectors(vad=SileroModel(), bargein=HeuristicBargeInDetector())


async def call(
    detectors: Detectors, caller: np.ndarray, llm: ScriptLLM
) -> tuple[CallSession, WavCallerTransport]:
    agent = parse_agent_yaml(AGENT_YAML).config
    transport = WavCallerTransport(caller, CallInfo("test-1", "replay", "dental"), tail=2.0, speed=4.0)
    session = CallSession(transport, agent, detectors, Backends(llm=llm, tts=EspeakCliTTS()))
    assert await session.run() == "caller_hangup"
    return session, transport


async def test_greeting_backchannel_and_barge_in(detectors: Detectors) -> None:
    caller = place(
        13.0,
        [
            (3.0, espeak("mm-hmm", voice="en-gb", speed=170)),
            (6.0, espeak("actually wait, I need a morning slot please", voice="en-gb")),
        ],
    )
    llm = ScriptLLM(["Of course. Tuesday at nine is our first morning slot."])
    session, transport = await call(detectors, caller, llm)
    types = [e.type for e in session.log.events]
    assert types.count("backchannel") == 1 and types.count("interruption") == 1
    interruption = next(e for e in session.log.events if e.type == "interruption")
    assert abs(interruption.onset - 6.0) < 0.2  # type: ignore[attr-defined]
    # the agent really went quiet: no agent audio between the pause and the reply
    agent = transport.agent_track().astype(np.float32)
    frame = RATE // 50
    quiet_from = int((interruption.t + 0.1) * 50)
    reply_at = next(
        i
        for i in range(quiet_from, len(agent) // frame)
        if np.abs(agent[i * frame : (i + 1) * frame]).max() > 0
    )
    assert reply_at * 0.02 > 7.5  # silent from the barge-in until after the caller stopped
    # the greeting in the chat context holds only what was heard, marked interrupted
    greeting = next(m for m in session.messages if m.role == "assistant")
    assert greeting.interrupted and greeting.content and GREETING.startswith(greeting.content)
    assert len(greeting.content) < len(GREETING) - 20
    # the LLM saw that truncated greeting before answering the caller's turn
    (context,) = llm.contexts
    assert [m.role for m in context] == ["system", "assistant", "user"]
    assert context[1].content == greeting.content and context[1].interrupted
    assert any("morning" in text for _, text in session.log.agent_said)


async def test_recorded_call_replays_to_the_same_decisions(detectors: Detectors, tmp_path) -> None:
    session, transport = await call(detectors, backchannel_then_barge_in(), ScriptLLM(["Sure."]))
    stereo = transport.stereo()
    agent = parse_agent_yaml(AGENT_YAML).config
    replayed = Replayer(agent.turn_handling.to_options()).replay_pcm(stereo[:, 0], stereo[:, 1], RATE, "call")

    def verdicts(events: list) -> list[tuple[str, float]]:
        return [(e.type, round(e.onset, 2)) for e in events if e.type in ("interruption", "backchannel")]

    live = verdicts(session.log.events)
    assert live and live == verdicts(replayed.events)
