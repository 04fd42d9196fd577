"""The AgentRunner keeps nothing of a call once it has ended.

Issue #14 measured 1.26 MB per SIP call kept for good: the runner held every finished CallSession
(models' stream state, audio buffers, backends). Now a session lives as long as its call; what a
caller of the runner may keep is the call's CallObserver, which holds no part of the session.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest
from audio_fixtures import espeak, place
from session_fixtures import GREETING, dental_agent_yaml

import gateway.agents.runner as runner_module
from gateway.agents.runner import AgentRunner
from gateway.agents.session import CallSession
from gateway.calls import CallInfo, CallObserver, Caption, Observation
from gateway.edges.wavfile import WavCallerTransport
from gateway.turns.events import Event

RATE = 8000


async def test_a_finished_calls_session_is_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(dental_agent_yaml("leak-test"))
    made: list[weakref.ref[CallSession]] = []

    class TrackedSession(CallSession):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(weakref.ref(self))

    monkeypatch.setattr(runner_module, "CallSession", TrackedSession)
    runner = AgentRunner()
    caller = place(2.0, [(0.5, espeak("hello there", rate=RATE))], rate=RATE)
    observers = []
    for i in range(3):
        transport = WavCallerTransport(
            caller, CallInfo(f"leak-{i}", "replay", str(agent)), tail=0.5, realtime=False
        )
        observer = CallObserver()
        await runner(transport, observer)
        observers.append(observer)

    gc.collect()
    assert len(made) == 3
    assert [ref() for ref in made] == [None, None, None]  # no session outlives its call
    assert runner.stats.calls == 3 and runner.stats.active == 0
    # what was observed of each call stays with its observer, closed
    for observer in observers:
        assert observer.closed
        assert any(e.type == "user_speech_start" for e in observer.events)


async def test_an_observer_streams_the_call_as_it_happens(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text(dental_agent_yaml("observer-test"))
    caller = place(2.0, [(0.5, espeak("hello there", rate=RATE))], rate=RATE)
    transport = WavCallerTransport(caller, CallInfo("obs-1", "replay", str(agent)), tail=0.5, realtime=False)
    observer = CallObserver()
    seen: list[Observation] = []

    async def follow() -> None:
        async for item in observer.follow():
            seen.append(item)

    follower = asyncio.create_task(follow())
    await AgentRunner()(transport, observer)
    await asyncio.wait_for(follower, 5)  # ends because the call closed the observer
    assert [item for item in seen if isinstance(item, Event)] == observer.events
    assert Caption("agent", 0.0, GREETING) in seen  # the greeting, said before the caller spoke
    assert {"user_speech_start", "user_speech_end"} <= {e.type for e in observer.events}
