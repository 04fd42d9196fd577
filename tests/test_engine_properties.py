"""Invariants of the TurnEngine over random but well-formed input streams (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.turns.engine import AgentState, TurnEngine, UserState
from gateway.turns.events import (
    AgentSpeechEnd,
    AgentSpeechStart,
    EndOfTurn,
    Event,
    FalseInterruption,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    Word,
)
from gateway.turns.options import BackchannelBoundary, InterruptionOptions, TurnHandlingOptions

ACTIONS = ("agent", "user", "progress", "prob", "fail", "eot", "words", "tick", "tick")

options_strategy = st.builds(
    lambda mode, resume, timeout, boundary, detection, min_words, enabled: replace(
        TurnHandlingOptions(turn_detection=detection),
        interruption=replace(
            InterruptionOptions(),
            mode=mode,
            resume_false_interruption=resume,
            false_interruption_timeout=timeout,
            backchannel_boundary=boundary,
            min_words=min_words,
            enabled=enabled,
        ),
    ),
    st.sampled_from(["vad", "adaptive"]),
    st.booleans(),
    st.sampled_from([0.3, 0.6, 2.0]),
    st.sampled_from([None, BackchannelBoundary(1.0, 3.5), BackchannelBoundary(0.5, 0.5)]),
    st.sampled_from(["vad", "stt", "model"]),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([True, True, False]),
)

steps_strategy = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.floats(0.0, 0.6), st.floats(0.0, 1.0)), min_size=5, max_size=120
)


def drive(options: TurnHandlingOptions, has_stt: bool, steps: list[tuple[str, float, float]]) -> list[Event]:
    """Apply only the inputs that fit the current state, as a consistent driver would."""
    engine = TurnEngine(options, has_stt=has_stt)
    t, onset, voiced = 0.0, 0.0, 0.0
    events: list[Event] = []
    for action, dt, value in steps:
        t += dt
        if action == "agent":
            if engine.agent is AgentState.SILENT:
                events += engine.agent_speech_start(t)
            elif engine.agent is AgentState.SPEAKING:
                events += engine.agent_speech_end(t, t - value * dt)
        elif action == "user":
            if engine.user is UserState.SILENT:
                onset, voiced = t - min(0.064, dt), 0.0
                events += engine.user_speech_start(t, onset)
            else:
                events += engine.user_speech_end(t, t - min(dt, 0.3))
        elif action == "progress" and engine.user is UserState.SPEAKING:
            voiced = min(voiced + dt, t - onset)
            events += engine.user_speech_progress(t, voiced)
        elif action == "prob":
            events += engine.bargein_probability(t, value)
        elif action == "fail" and value > 0.9:
            events += engine.bargein_failed(t, "test")
        elif action == "eot":
            events += engine.eot_probability(t, value)
        elif action == "words":
            words = [Word("uh-huh" if value < 0.3 else "wait", max(0.0, t - 0.5), max(0.0, t - 0.1))]
            events += engine.transcript(t, words, final=value > 0.5, end_of_utterance=value > 0.7)
        else:
            events += engine.tick(t)
    if engine.user is UserState.SPEAKING:  # the call ends in silence
        t += 0.3
        events += engine.user_speech_end(t, t - 0.3)
    events += engine.tick(t + 10.0)
    return events


@settings(max_examples=300, deadline=None)
@given(options_strategy, st.booleans(), steps_strategy)
def test_playout_decisions_are_consistent(
    options: TurnHandlingOptions, has_stt: bool, steps: list[tuple[str, float, float]]
) -> None:
    events = drive(options, has_stt, steps)
    agent = "silent"
    unresolved = 0
    for event in events:
        if isinstance(event, AgentSpeechStart):
            assert agent == "silent"
            agent = "speaking"
        elif isinstance(event, AgentSpeechEnd):
            assert agent == "speaking"  # never ends while paused: paused audio does not run out
            agent = "silent"
        elif isinstance(event, Interruption):
            assert agent == "speaking", "only an audible agent can be interrupted"
            assert event.latency_ms >= 0 and event.t >= event.onset
            assert unresolved == 0
            unresolved = 1
        elif isinstance(event, PausePlayout):
            assert agent == "speaking" and unresolved == 1
            agent = "paused"
        elif isinstance(event, ResumePlayout):
            assert agent == "paused"  # never both paused and playing
            agent = "speaking"
            unresolved -= 1
        elif isinstance(event, StopPlayout):
            assert agent in ("paused", "speaking")
            agent = "silent"
            unresolved -= 1
        elif isinstance(event, EndOfTurn):
            assert agent != "speaking"
            assert event.delay_ms >= 0
        assert unresolved in (0, 1)
    if not options.interruption.enabled:
        assert not any(isinstance(e, Interruption) for e in events)


@settings(max_examples=300, deadline=None)
@given(options_strategy, st.booleans(), steps_strategy)
def test_every_interruption_is_followed_by_exactly_one_resume_or_stop(
    options: TurnHandlingOptions, has_stt: bool, steps: list[tuple[str, float, float]]
) -> None:
    events = drive(options, has_stt, steps)
    decisions = [e for e in events if isinstance(e, Interruption | ResumePlayout | StopPlayout)]
    for i, event in enumerate(decisions):
        if isinstance(event, Interruption):
            following = decisions[i + 1 : i + 2]
            assert len(following) == 1, "an interruption was left unresolved after 10 s of silence"
            assert not isinstance(following[0], Interruption)
    resumes = [e for e in events if isinstance(e, ResumePlayout)]
    resumed = [e for e in events if isinstance(e, FalseInterruption) and e.resumed]
    assert len(resumes) == len(resumed)
    if not options.interruption.resume_false_interruption:
        assert not resumes and not any(isinstance(e, PausePlayout) for e in events)


@settings(max_examples=200, deadline=None)
@given(options_strategy, st.booleans(), steps_strategy)
def test_decision_times_never_go_backwards(
    options: TurnHandlingOptions, has_stt: bool, steps: list[tuple[str, float, float]]
) -> None:
    events = drive(options, has_stt, steps)
    decided = [
        e.t for e in events if isinstance(e, Interruption | PausePlayout | ResumePlayout | StopPlayout)
    ]
    assert decided == sorted(decided)
