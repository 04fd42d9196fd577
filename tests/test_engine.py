"""TurnEngine driven with timestamped event sequences, one behaviour per test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.turns.engine import AgentState, EngineError, TurnEngine
from gateway.turns.events import (
    Backchannel,
    DetectorFallback,
    EndOfTurn,
    Event,
    FalseInterruption,
    Interruption,
    ResumePlayout,
    StopPlayout,
    Word,
)
from gateway.turns.lexical import LexicalCheck
from gateway.turns.options import (
    BackchannelBoundary,
    InterruptionOptions,
    LexicalCheckOptions,
    TurnHandlingOptions,
)


def opts(**interruption: object) -> TurnHandlingOptions:
    top = {
        k: interruption.pop(k) for k in list(interruption) if k in TurnHandlingOptions.__dataclass_fields__
    }
    return replace(TurnHandlingOptions(**top), interruption=replace(InterruptionOptions(), **interruption))


class Run:
    """Collects everything the engine says."""

    def __init__(self, engine: TurnEngine) -> None:
        self.engine = engine
        self.events: list[Event] = []

    def __call__(self, method: str, *args: object, **kwargs: object) -> list[Event]:
        out = getattr(self.engine, method)(*args, **kwargs)
        self.events += out
        return out

    def speak(self, onset: float, voiced_until: float, end: float | None = None, step: float = 0.032) -> None:
        """User speech from `onset` with progress reports until `voiced_until`, ending at `end`."""
        self("user_speech_start", onset + 0.064, onset)
        t = onset + 0.064
        while t < voiced_until - 1e-9:
            t = min(voiced_until, t + step)
            self("user_speech_progress", t, t - onset)
        if end is not None:
            self("user_speech_end", end + 0.3, end)

    def ticks(self, start: float, stop: float, step: float = 0.02) -> None:
        t = start
        while t <= stop + 1e-9:
            self("tick", t)
            t += step

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def agent_speaking(options: TurnHandlingOptions, *, has_stt: bool = False, at: float = 0.0) -> Run:
    run = Run(TurnEngine(options, has_stt=has_stt))
    run("agent_speech_start", at)
    return run


# -- vad mode ---------------------------------------------------------------------------------


def test_vad_mode_interrupts_after_min_duration_of_voiced_speech() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.5))
    run.speak(onset=2.0, voiced_until=2.45)
    assert not run.of(Interruption)
    run("user_speech_progress", 2.52, 0.52)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption)
    assert interruption.mode == "vad" and interruption.onset == 2.0
    assert interruption.latency_ms == pytest.approx(520.0)
    assert run.types[-1] == "pause_playout"
    assert run.engine.agent is AgentState.PAUSED


def test_vad_mode_short_overlap_is_a_backchannel_and_never_a_turn() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.5))
    run.speak(onset=2.0, voiced_until=2.3, end=2.3)
    assert not run.of(Backchannel)  # not before the overlap's allowed pause has passed
    run.ticks(2.6, 6.0)
    (bc,) = run.of(Backchannel)
    assert isinstance(bc, Backchannel)
    assert bc.mode == "vad" and bc.probability is None and bc.duration == pytest.approx(0.3)
    assert bc.t == pytest.approx(2.3 + 0.6, abs=0.021)
    assert not run.of(EndOfTurn) and not run.of(Interruption)
    assert run.engine.agent is AgentState.SPEAKING


def test_min_duration_counts_only_speech_inside_the_overlap() -> None:
    run = Run(TurnEngine(opts(mode="vad", min_duration=0.5)))
    run.speak(onset=1.0, voiced_until=1.4)
    run("agent_speech_start", 1.4)  # the agent starts while the user is mid-utterance
    run("user_speech_progress", 1.5, 0.5)
    assert not run.of(Interruption)
    run("user_speech_progress", 1.92, 0.92)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.onset == 1.4


# -- adaptive mode ----------------------------------------------------------------------------


def test_adaptive_interrupts_when_probability_crosses_threshold() -> None:
    run = agent_speaking(opts(mode="adaptive", threshold=0.6))
    run.speak(onset=3.0, voiced_until=3.2)
    assert run.engine.wants_bargein_probability
    run("bargein_probability", 3.2, 0.4)
    assert not run.of(Interruption)
    run("bargein_probability", 3.3, 0.7)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption)
    assert interruption.mode == "adaptive" and interruption.probability == 0.7 and interruption.requests == 2
    assert interruption.latency_ms == pytest.approx(300.0)
    # the VAD rule does not apply after the start boundary, however long the speech
    run2 = agent_speaking(opts(mode="adaptive"))
    run2.speak(onset=3.0, voiced_until=5.0)
    assert not run2.of(Interruption)


def test_adaptive_overlap_below_threshold_ends_as_backchannel_with_its_best_probability() -> None:
    run = agent_speaking(opts(mode="adaptive", threshold=0.5))
    run.speak(onset=2.0, voiced_until=2.2)
    run("bargein_probability", 2.2, 0.2)
    run("bargein_probability", 2.3, 0.35)
    run("user_speech_end", 2.6, 2.35)
    run.ticks(2.62, 3.0)
    (bc,) = run.of(Backchannel)
    assert isinstance(bc, Backchannel)
    assert bc.mode == "adaptive" and bc.probability == 0.35 and bc.requests == 2
    assert run.engine.agent is AgentState.SPEAKING
    # a late answer for the closed overlap changes nothing
    assert run("bargein_probability", 3.1, 0.99) == []


def test_start_boundary_lets_vad_decide_and_ignores_the_model() -> None:
    run = agent_speaking(opts(mode="adaptive", backchannel_boundary=BackchannelBoundary(1.0, 3.5)), at=10.0)
    run.speak(onset=10.2, voiced_until=10.5)
    assert not run.engine.wants_bargein_probability
    assert run("bargein_probability", 10.5, 0.01) == []
    run("user_speech_progress", 10.72, 0.52)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.mode == "vad"


def test_start_boundary_expires_and_the_model_takes_over() -> None:
    run = agent_speaking(opts(mode="adaptive", backchannel_boundary=BackchannelBoundary(1.0, 3.5)))
    run.speak(onset=0.7, voiced_until=0.9)
    run("tick", 1.0)
    assert run.engine.wants_bargein_probability
    run("user_speech_progress", 1.4, 0.7)  # past min_duration, but VAD no longer decides
    assert not run.of(Interruption)
    run("bargein_probability", 1.4, 0.9)
    assert [e.mode for e in run.of(Interruption)] == ["adaptive"]  # type: ignore[attr-defined]


def test_boundary_none_means_adaptive_from_the_first_frame() -> None:
    run = agent_speaking(opts(mode="adaptive", backchannel_boundary=None))
    run.speak(onset=0.1, voiced_until=0.8)
    assert run.engine.wants_bargein_probability and not run.of(Interruption)


def test_detector_failure_falls_back_to_vad_for_the_rest_of_the_call() -> None:
    run = agent_speaking(opts(mode="adaptive"))
    run.speak(onset=2.0, voiced_until=2.6)
    assert not run.of(Interruption)
    run("bargein_failed", 2.6, "timeout")
    fallback, interruption = run.of(DetectorFallback)[0], run.of(Interruption)[0]
    assert isinstance(fallback, DetectorFallback) and fallback.reason == "timeout"
    assert isinstance(interruption, Interruption) and interruption.mode == "vad" and interruption.fallback
    assert not run.engine.wants_bargein_probability
    assert run("bargein_failed", 2.7, "again") == []  # said once


# -- false interruptions ----------------------------------------------------------------------


def interrupted(options: TurnHandlingOptions, has_stt: bool) -> Run:
    run = agent_speaking(options, has_stt=has_stt)
    run.speak(onset=2.0, voiced_until=2.5)
    run("bargein_probability", 2.5, 0.9)
    assert run.of(Interruption)
    return run


def test_pause_then_resume_when_the_user_falls_silent_without_a_transcript() -> None:
    run = interrupted(opts(false_interruption_timeout=0.6), has_stt=True)
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 3.18)
    assert not run.of(ResumePlayout)
    run.ticks(3.2, 3.3)
    assert run.types[-2:] == ["resume_playout", "false_interruption"]
    (false,) = run.of(FalseInterruption)
    assert isinstance(false, FalseInterruption) and false.resumed and false.t == pytest.approx(3.2)
    assert run.engine.agent is AgentState.SPEAKING
    run.ticks(3.3, 6.0)
    assert not run.of(EndOfTurn) and not run.of(StopPlayout)


def test_a_paused_agent_waits_for_words_a_batch_stt_is_still_transcribing() -> None:
    # a local decoder under load answers after false_interruption_timeout: resuming at the timeout
    # would talk over "actually, wait"
    run = interrupted(opts(false_interruption_timeout=0.6, max_endpointing_delay=3.0), has_stt=True)
    run.engine.words_awaited(1)
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 4.0)
    assert not run.of(ResumePlayout) and run.engine.agent is AgentState.PAUSED
    run.engine.words_awaited(0)
    run("transcript", 4.02, [Word("actually", 2.0, 2.4), Word("wait", 2.45, 2.6)], final=True)
    assert [s.reason for s in run.of(StopPlayout)] == ["transcript"]  # type: ignore[attr-defined]
    assert not run.of(FalseInterruption)


def test_words_that_never_come_resume_the_agent() -> None:
    # an empty result (a cough): the agent resumes as soon as the STT has answered ...
    run = interrupted(opts(false_interruption_timeout=0.6), has_stt=True)
    run.engine.words_awaited(1)
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 3.6)
    assert not run.of(ResumePlayout)
    run.engine.words_awaited(0)
    run.ticks(3.62, 3.7)
    (false,) = run.of(FalseInterruption)
    assert isinstance(false, FalseInterruption) and false.resumed and false.t == pytest.approx(3.62)
    # ... and an STT that never answers holds it max_endpointing_delay after the last words at most
    run = interrupted(opts(false_interruption_timeout=0.6, max_endpointing_delay=1.5), has_stt=True)
    run.engine.words_awaited(2)
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 4.2)
    (false,) = run.of(FalseInterruption)
    assert isinstance(false, FalseInterruption) and false.resumed and false.t == pytest.approx(4.1, abs=0.03)


def test_pause_then_cancel_on_a_final_transcript() -> None:
    run = interrupted(opts(false_interruption_timeout=0.6), has_stt=True)
    run("transcript", 2.7, [Word("actually", 2.0, 2.4), Word("wait", 2.45, 2.6)], final=True)
    stops = run.of(StopPlayout)
    assert [s.reason for s in stops] == ["transcript"]  # type: ignore[attr-defined]
    assert run.engine.agent is AgentState.SILENT
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 4.0)
    assert not run.of(FalseInterruption)
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.transcript == "actually wait" and eot.interrupted_agent


def test_pause_then_cancel_by_end_of_turn_without_stt() -> None:
    run = interrupted(opts(false_interruption_timeout=2.0), has_stt=False)
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 3.2)
    assert run.types[-2:] == ["stop_playout", "end_of_turn"]
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.delay_ms == pytest.approx(500, abs=20) and eot.interrupted_agent
    run.ticks(3.2, 5.0)
    assert not run.of(FalseInterruption) and not run.of(ResumePlayout)


def test_backchannel_words_resume_a_paused_agent_at_once() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.3), has_stt=True)
    run.speak(onset=2.0, voiced_until=2.35, end=2.4)
    assert run.of(Interruption)
    run("transcript", 2.8, [Word("uh-huh", 2.0, 2.4)], final=True)
    assert run.types[-2:] == ["resume_playout", "false_interruption"]
    assert not run.of(StopPlayout)


def test_without_resume_an_interruption_stops_at_once_and_false_ones_are_reported() -> None:
    run = interrupted(opts(resume_false_interruption=False, false_interruption_timeout=0.6), has_stt=True)
    assert run.types[-1] == "stop_playout" and run.engine.agent is AgentState.SILENT
    run("user_speech_end", 2.9, 2.6)
    run.ticks(2.92, 3.4)
    (false,) = run.of(FalseInterruption)
    assert isinstance(false, FalseInterruption) and not false.resumed
    assert not run.of(ResumePlayout)


def test_speech_resuming_cancels_the_false_interruption_timer() -> None:
    run = interrupted(opts(false_interruption_timeout=0.6), has_stt=True)
    run("user_speech_end", 2.9, 2.6)
    run.speak(onset=3.0, voiced_until=3.4)
    run.ticks(3.4, 3.6)
    assert not run.of(ResumePlayout)
    assert run.engine.agent is AgentState.PAUSED


# -- disabled interruptions, min_words --------------------------------------------------------


def test_disabled_interruptions_never_stop_the_agent_nor_make_turns() -> None:
    run = agent_speaking(opts(enabled=False, mode="vad"), has_stt=False)
    run.speak(onset=1.5, voiced_until=4.0, end=4.0)
    run.ticks(4.3, 6.0)
    assert "overlap_start" in run.types
    assert not run.of(Interruption) and not run.of(Backchannel) and not run.of(EndOfTurn)
    assert run.engine.agent is AgentState.SPEAKING


def test_min_words_is_counted_per_utterance_not_per_agent_turn() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.3, min_words=2), has_stt=True)
    for k in range(3):  # "yeah" three times: LiveKit's cumulative count would interrupt at the 2nd
        start = 2.0 + 2 * k
        run.speak(onset=start, voiced_until=start + 0.5)
        run("transcript", start + 0.55, [Word("yeah", start, start + 0.4)], final=False)
        run("user_speech_end", start + 0.9, start + 0.6)
        run.ticks(start + 0.92, start + 1.3)
    assert not run.of(Interruption) and len(run.of(Backchannel)) == 3
    run.speak(onset=9.0, voiced_until=9.4)
    assert not run.of(Interruption)
    run("transcript", 9.5, [Word("no", 9.0, 9.2), Word("wait", 9.25, 9.45)], final=False)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.onset == 9.0


def test_min_words_is_ignored_without_an_stt() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.3, min_words=3), has_stt=False)
    run.speak(onset=2.0, voiced_until=2.4)
    assert run.of(Interruption)


# -- end of turn ------------------------------------------------------------------------------


def alone(options: TurnHandlingOptions, has_stt: bool = False) -> Run:
    return Run(TurnEngine(options, has_stt=has_stt))


def test_vad_endpointing_waits_min_delay_from_the_last_voiced_audio() -> None:
    run = alone(opts(min_endpointing_delay=0.5))
    run.speak(onset=0.5, voiced_until=1.0, end=1.0)
    run.ticks(1.3, 1.48)
    assert not run.of(EndOfTurn)
    run.ticks(1.5, 1.6)
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.delay_ms == pytest.approx(500, abs=1) and eot.wait_s == 0.5


def test_speech_resuming_cancels_the_pending_end_of_turn() -> None:
    run = alone(opts(min_endpointing_delay=0.5))
    run.speak(onset=0.5, voiced_until=1.0, end=1.0)
    run.speak(onset=1.35, voiced_until=2.0)
    run.ticks(2.0, 2.4)
    assert not run.of(EndOfTurn)
    run("user_speech_end", 2.4, 2.1)
    run.ticks(2.42, 2.7)
    (eot,) = run.of(EndOfTurn)
    assert eot.t == pytest.approx(2.6, abs=0.011)


@pytest.mark.parametrize(("probability", "expected_wait"), [(1.0, 0.5), (0.0, 1.5), (0.5, 1.0), (0.8, 0.7)])
def test_model_probability_sets_the_wait_continuously(probability: float, expected_wait: float) -> None:
    run = alone(replace(opts(), turn_detection="model", min_endpointing_delay=0.5, max_endpointing_delay=1.5))
    run.speak(onset=0.5, voiced_until=1.0, end=1.0)
    assert run.engine.wants_eot_probability
    run("eot_probability", 1.3, probability)
    run.ticks(1.32, 3.0)
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.wait_s == pytest.approx(expected_wait)
    assert eot.delay_ms == pytest.approx(max(expected_wait, 0.32) * 1000, abs=20)
    assert eot.probability == probability


def test_model_probability_is_re_evaluated_as_silence_grows() -> None:
    run = alone(replace(opts(), turn_detection="model", min_endpointing_delay=0.5, max_endpointing_delay=1.5))
    run.speak(onset=0.5, voiced_until=1.0, end=1.0)
    run("eot_probability", 1.3, 0.1)
    run.ticks(1.32, 1.7)
    assert not run.of(EndOfTurn)
    run("eot_probability", 1.72, 0.9)  # the detector grew confident: wait 0.6 s, already elapsed
    (eot,) = run.of(EndOfTurn)
    assert eot.t == pytest.approx(1.72)


def test_stt_turns_need_words_and_the_stt_end_of_utterance() -> None:
    run = alone(replace(opts(), turn_detection="stt", max_endpointing_delay=3.0), has_stt=True)
    run.speak(onset=0.5, voiced_until=1.0, end=1.0)
    run.ticks(1.3, 1.8)
    assert not run.of(EndOfTurn)
    run("transcript", 1.8, [Word("tuesday", 0.5, 1.0)], final=True, end_of_utterance=True)
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.transcript == "tuesday" and eot.t == pytest.approx(1.8)


def test_speech_without_words_is_not_a_turn_when_an_stt_listens() -> None:
    run = alone(opts(), has_stt=True)
    run.speak(onset=0.5, voiced_until=0.8, end=0.8)  # a cough
    run.ticks(1.1, 5.0)
    assert not run.of(EndOfTurn)
    assert run.engine.pending_turn_end is None


def test_dynamic_endpointing_learns_the_callers_long_pauses() -> None:
    options = replace(opts(), min_endpointing_delay=0.5, max_endpointing_delay=2.0)
    options = replace(options, endpointing=replace(options.endpointing, mode="dynamic", dynamic_alpha=0.5))
    run = alone(options)
    onset = 0.5
    for _ in range(4):  # a caller who pauses 0.45 s inside sentences
        run.speak(onset=onset, voiced_until=onset + 0.5, end=onset + 0.5)
        onset += 0.95
    assert not run.of(EndOfTurn)
    assert run.engine.min_endpointing_delay == 0.5  # pauses shorter than min never lower it
    run2 = alone(options)
    onset = 0.5
    for _ in range(3):  # and one who pauses 0.4 s, then 1.2 s twice without being cut off
        run2.speak(onset=onset, voiced_until=onset + 0.5, end=onset + 0.5)
        run2("eot_probability", onset + 0.8, 0.0)
        onset += 0.5 + 0.45
    assert run2.engine.min_endpointing_delay >= 0.5


# -- end boundary -----------------------------------------------------------------------------


def test_backchannel_near_the_agents_end_becomes_a_turn_without_stt() -> None:
    run = agent_speaking(opts(mode="adaptive", backchannel_boundary=BackchannelBoundary(1.0, 3.5)))
    run.speak(onset=5.0, voiced_until=5.3)
    run("bargein_probability", 5.3, 0.1)
    run("user_speech_end", 5.6, 5.3)
    run.ticks(5.6, 6.0)
    run("agent_speech_end", 6.3, 6.0)
    run.ticks(6.3, 6.5)
    (eot,) = run.of(EndOfTurn)
    assert isinstance(eot, EndOfTurn) and eot.t == pytest.approx(6.3)


def test_backchannel_long_before_the_agents_end_stays_dropped() -> None:
    run = agent_speaking(opts(mode="adaptive", backchannel_boundary=BackchannelBoundary(1.0, 3.5)))
    run.speak(onset=2.0, voiced_until=2.3, end=2.3)
    run.ticks(2.6, 7.9)
    run("agent_speech_end", 8.0)
    run.ticks(8.0, 10.0)
    assert not run.of(EndOfTurn)


@pytest.mark.parametrize(("words", "is_turn"), [(["mm-hmm"], False), (["yes", "tuesday"], True)])
def test_late_transcripts_in_the_end_boundary_count_unless_pure_backchannel(
    words: list[str], is_turn: bool
) -> None:
    run = agent_speaking(opts(mode="adaptive"), has_stt=True)
    run.speak(onset=5.0, voiced_until=5.4, end=5.4)
    run("agent_speech_end", 6.0)
    aligned = [Word(w, 5.0 + 0.2 * i, 5.2 + 0.2 * i) for i, w in enumerate(words)]
    run("transcript", 6.2, aligned, final=True)
    run.ticks(6.2, 8.0)
    assert bool(run.of(EndOfTurn)) is is_turn
    assert "transcript_dropped" in run.types


# -- contract errors --------------------------------------------------------------------------


def test_inconsistent_inputs_are_errors_not_silent_no_ops() -> None:
    engine = TurnEngine()
    with pytest.raises(EngineError, match="agent_speech_end"):
        engine.agent_speech_end(1.0)
    with pytest.raises(EngineError, match="silent"):
        engine.user_speech_end(1.0, 0.9)
    engine.agent_speech_start(2.0)
    with pytest.raises(EngineError, match="agent_speech_start"):
        engine.agent_speech_start(2.1)
    with pytest.raises(EngineError, match="backwards"):
        engine.tick(1.0)


def test_event_dicts_follow_the_replay_contract() -> None:
    run = interrupted(opts(), has_stt=False)
    row = run.of(Interruption)[0].to_dict()
    assert row["type"] == "interruption"
    assert {"t", "onset", "latency_ms", "mode", "probability"} <= row.keys()
    assert isinstance(row["t"], float)


def test_a_short_pause_keeps_one_overlap() -> None:
    """ "Actually, wait": VAD hears two utterances; the model judges them as one attempt."""
    run = agent_speaking(opts(mode="adaptive", overlap_max_pause=0.6))
    run.speak(onset=3.0, voiced_until=3.4, end=3.45)  # "actually,"
    run("bargein_probability", 3.8, 0.3)
    run.speak(onset=3.85, voiced_until=4.1)  # "wait" after a 0.4 s pause
    assert run.types.count("overlap_start") == 1 and not run.of(Backchannel)
    run("bargein_probability", 4.2, 0.8)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.onset == 3.0 and interruption.requests == 2
    assert interruption.latency_ms == pytest.approx(1200.0)


def test_a_pause_longer_than_the_limit_ends_the_overlap_as_a_backchannel() -> None:
    run = agent_speaking(opts(mode="vad", min_duration=0.5, overlap_max_pause=0.6))
    run.speak(onset=3.0, voiced_until=3.3, end=3.3)
    run.ticks(3.62, 4.0)
    run.speak(onset=4.1, voiced_until=4.35, end=4.35)
    run.ticks(4.7, 5.2)
    assert [e.onset for e in run.of(Backchannel)] == [3.0, 4.1]  # type: ignore[attr-defined]
    # within one overlap the voiced time adds up for the VAD rule: 0.3 + 0.25 >= 0.5
    run2 = agent_speaking(opts(mode="vad", min_duration=0.5, overlap_max_pause=0.6))
    run2.speak(onset=3.0, voiced_until=3.3, end=3.3)
    run2.speak(onset=3.7, voiced_until=3.95)
    (interruption,) = run2.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.onset == 3.0


def test_an_interruption_decided_in_the_pause_makes_the_pause_the_end_of_the_turn() -> None:
    run = agent_speaking(opts(mode="adaptive", false_interruption_timeout=2.0), has_stt=False)
    run.speak(onset=3.0, voiced_until=3.5, end=3.5)
    run("bargein_probability", 3.82, 0.9)  # the caller is silent: "no!" then nothing
    assert run.of(Interruption) and run.engine.agent is AgentState.PAUSED
    run.ticks(3.84, 4.2)
    assert run.types[-2:] == ["stop_playout", "end_of_turn"]
    (eot,) = run.of(EndOfTurn)
    assert eot.delay_ms == pytest.approx(520, abs=25)  # type: ignore[attr-defined]


# -- adaptive mode with the lexical check ------------------------------------------------------


def lexical_opts(**lexical: object) -> TurnHandlingOptions:
    check = replace(LexicalCheckOptions(enabled=True), **lexical)
    return opts(mode="adaptive", threshold=0.5, lexical_check=check)


def lexical_run(**lexical: object) -> Run:
    run = Run(TurnEngine(lexical_opts(**lexical), has_lexical=True))
    run("agent_speech_start", 0.0)
    return run


def checks(run: Run) -> list[LexicalCheck]:
    return [e for e in run.events if isinstance(e, LexicalCheck)]


def test_lexical_check_is_asked_when_the_model_leans_and_a_command_decides_early() -> None:
    run = lexical_run(lean=0.3, preroll=0.2)
    run.speak(onset=3.0, voiced_until=3.2)
    run("bargein_probability", 3.2, 0.2)
    assert not checks(run)
    run("bargein_probability", 3.3, 0.35)  # leans, below the threshold: ask, do not decide
    (check,) = checks(run)
    assert (check.t, check.onset, check.start) == (3.3, 3.0, pytest.approx(2.8))
    assert not run.of(Interruption)
    run("bargein_probability", 3.4, 0.4)  # the decode is in flight: no second request
    assert len(checks(run)) == 1
    run("lexical_verdict", 3.42, 3.0, "command", 3.3)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption)
    assert interruption.t == 3.42 and interruption.mode == "adaptive" and interruption.probability == 0.4


def test_cue_verdict_vetoes_the_model_and_the_overlap_ends_as_a_backchannel() -> None:
    run = lexical_run()
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.8)  # the model says "interrupt": held, a check asked
    assert len(checks(run)) == 1 and not run.of(Interruption)
    run("lexical_verdict", 2.36, 2.0, "cue", 2.3)
    assert not run.of(Interruption)
    run("user_speech_end", 2.4, 2.3)
    run("bargein_probability", 2.4, 0.9)  # still vetoed: nothing said since the decoded audio
    run.ticks(2.42, 3.2)
    assert len(checks(run)) == 1
    assert not run.of(Interruption)
    (bc,) = run.of(Backchannel)
    assert isinstance(bc, Backchannel) and bc.probability == 0.9


def test_other_words_confirm_a_held_interruption_when_the_verdict_arrives() -> None:
    run = lexical_run()
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.7)
    assert not run.of(Interruption)
    run("tick", 2.34)
    run("lexical_verdict", 2.36, 2.0, "other", 2.3)
    (interruption,) = run.of(Interruption)
    assert (
        isinstance(interruption, Interruption) and interruption.t == 2.36 and interruption.probability == 0.7
    )


def test_a_missing_verdict_holds_an_interruption_until_the_deadline_only() -> None:
    run = lexical_run(max_delay=0.6)
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.7)
    run.ticks(2.32, 2.58)
    assert not run.of(Interruption)
    run.ticks(2.6, 2.7)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption)
    assert interruption.t == pytest.approx(2.6) and interruption.latency_ms == pytest.approx(600.0)
    # the verdict arriving after the decision changes nothing
    assert run("lexical_verdict", 2.9, 2.0, "cue", 2.3) == []


def test_a_stale_cue_veto_expires_while_the_caller_keeps_talking() -> None:
    run = lexical_run(veto_span=0.5, max_checks=1)
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.8)
    run("lexical_verdict", 2.35, 2.0, "cue", 2.3)
    run("bargein_probability", 2.7, 0.8)  # no decode left to refresh the veto (max_checks)
    assert len(checks(run)) == 1 and not run.of(Interruption)
    run.ticks(2.72, 2.82)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.t == pytest.approx(2.8)


def test_a_verdict_for_another_overlap_is_ignored_and_without_a_runner_nothing_waits() -> None:
    run = lexical_run()
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.4)
    assert run("lexical_verdict", 2.35, 1.0, "command", 2.3) == []  # not this overlap's onset
    # an engine whose driver runs no lexical checks decides on the model alone
    plain = Run(TurnEngine(lexical_opts(), has_lexical=False))
    plain("agent_speech_start", 0.0)
    plain.speak(onset=2.0, voiced_until=2.3)
    plain("bargein_probability", 2.3, 0.7)
    assert not checks(plain) and len(plain.of(Interruption)) == 1


def test_a_cue_veto_does_not_hold_a_model_that_is_sure_enough() -> None:
    run = lexical_run(veto_below=0.9)
    run.speak(onset=2.0, voiced_until=2.3)
    run("bargein_probability", 2.3, 0.7)
    run("lexical_verdict", 2.35, 2.0, "cue", 2.3)
    run("bargein_probability", 2.4, 0.8)
    assert not run.of(Interruption)
    run("bargein_probability", 2.5, 0.95)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.t == 2.5


def test_command_probe_decides_on_a_command_and_ignores_other_words() -> None:
    run = lexical_run(command_probe=0.3)
    run.speak(onset=2.0, voiced_until=2.2)
    run("bargein_probability", 2.2, 0.1)  # unsure, before the probe time: nothing asked
    assert not checks(run)
    run("bargein_probability", 2.3, 0.1)
    (probe,) = checks(run)
    assert probe.t == 2.3
    run("bargein_probability", 2.4, 0.1)
    assert len(checks(run)) == 1  # once per overlap
    run("lexical_verdict", 2.43, 2.0, "command", 2.3)
    (interruption,) = run.of(Interruption)
    assert isinstance(interruption, Interruption) and interruption.t == 2.43
    # other words heard by the probe are not a verdict: the model still decides later
    other = lexical_run(command_probe=0.3)
    other.speak(onset=2.0, voiced_until=2.3)
    other("bargein_probability", 2.3, 0.1)
    other("lexical_verdict", 2.35, 2.0, "other", 2.3)
    assert not other.of(Interruption)
    other("bargein_probability", 2.4, 0.7)  # the model says yes: held for a regular decode
    assert len(checks(other)) == 2 and not other.of(Interruption)
