"""TurnPipeline: real VAD + detectors feeding the engine; detector failures; batched VAD."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from audio_fixtures import espeak, place

from gateway.audio.frames import Pcm, iter_frames
from gateway.turns.detectors import DetectorError
from gateway.turns.echo_gate import EchoGate, frame_db
from gateway.turns.events import DetectorFallback, Event, Interruption
from gateway.turns.options import BackchannelBoundary, InterruptionOptions, TurnHandlingOptions
from gateway.turns.pipeline import TurnPipeline
from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadBatch, VadStream

RATE = 8000


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


@pytest.fixture(scope="module")
def call() -> tuple[np.ndarray, np.ndarray]:
    agent = place(
        8.0, [(0.2, espeak("Your appointment is confirmed for Tuesday at three in the afternoon."))]
    )
    caller = place(8.0, [(2.5, espeak("no no, wait, that is the wrong day", voice="en-gb"))])
    return caller, agent


class ConstantStream:
    def __init__(self, detector: ScriptedDetector) -> None:
        self.detector = detector

    def push(self, caller: Pcm, agent: Pcm) -> None:
        self.detector.pushed += 1

    def probability(self, onset: float) -> float:
        self.detector.asked.append(onset)
        self.detector.clock_now += self.detector.answer_seconds
        if self.detector.error:
            raise DetectorError("model crashed")
        return self.detector.probability


class ScriptedDetector:
    name = "scripted"
    sample_rate = RATE

    def __init__(self, probability: float = 0.9, answer_seconds: float = 0.001, error: bool = False) -> None:
        self.probability, self.answer_seconds, self.error = probability, answer_seconds, error
        self.clock_now = 0.0
        self.pushed = 0
        self.asked: list[float] = []

    def open_stream(self) -> ConstantStream:
        return ConstantStream(self)

    def clock(self) -> float:
        return self.clock_now


def run(pipeline: TurnPipeline, caller: np.ndarray, agent: np.ndarray) -> list[Event]:
    events: list[Event] = []
    speaking = False
    for i, (c, a) in enumerate(zip(iter_frames(caller, RATE), iter_frames(agent, RATE), strict=True)):
        del i
        audible = bool(np.abs(a).max() > 100)
        if audible and not speaking:
            events += pipeline.agent_speech_start(new_turn=not events)
            speaking = True
        events += pipeline.process_frame(c, a if speaking else None)
    return events


def options(**kw: object) -> TurnHandlingOptions:
    return replace(
        TurnHandlingOptions(),
        interruption=replace(InterruptionOptions(), backchannel_boundary=BackchannelBoundary(1.0, 3.5), **kw),
    )


def test_detector_is_asked_every_interval_and_decides(
    model: SileroModel, call: tuple[np.ndarray, np.ndarray]
) -> None:
    detector = ScriptedDetector(probability=0.9)
    pipeline = TurnPipeline(options(), VadStream(model, RATE), bargein=detector, clock=detector.clock)
    events = run(pipeline, *call)
    (interruption,) = [e for e in events if isinstance(e, Interruption)]
    assert interruption.mode == "adaptive" and interruption.probability == 0.9
    assert abs(interruption.onset - 2.5) < 0.15
    assert detector.asked and all(abs(o - interruption.onset) < 1e-9 for o in detector.asked)
    assert detector.pushed == len(call[0]) // 160  # every frame reached the detector


def test_late_detector_answers_fall_back_to_vad(
    model: SileroModel, call: tuple[np.ndarray, np.ndarray]
) -> None:
    detector = ScriptedDetector(probability=0.1, answer_seconds=0.9)  # over the 0.7 s timeout
    pipeline = TurnPipeline(options(), VadStream(model, RATE), bargein=detector, clock=detector.clock)
    events = run(pipeline, *call)
    (fallback,) = [e for e in events if isinstance(e, DetectorFallback)]
    assert "900 ms" in fallback.reason
    (interruption,) = [e for e in events if isinstance(e, Interruption)]
    assert interruption.mode == "vad" and interruption.fallback and interruption.t >= fallback.t
    assert len(detector.asked) == 1  # never asked again after the fallback


def test_detector_errors_fall_back_and_the_call_goes_on(
    model: SileroModel, call: tuple[np.ndarray, np.ndarray]
) -> None:
    detector = ScriptedDetector(error=True)
    pipeline = TurnPipeline(options(), VadStream(model, RATE), bargein=detector, clock=detector.clock)
    events = run(pipeline, *call)
    (fallback,) = [e for e in events if isinstance(e, DetectorFallback)]
    assert "model crashed" in fallback.reason
    assert [e.mode for e in events if isinstance(e, Interruption)] == ["vad"]


def test_adaptive_without_any_detector_says_so_and_uses_vad(
    model: SileroModel, call: tuple[np.ndarray, np.ndarray]
) -> None:
    pipeline = TurnPipeline(options(), VadStream(model, RATE), bargein=None)
    events = run(pipeline, *call)
    assert isinstance(events[0], DetectorFallback) or any(isinstance(e, DetectorFallback) for e in events)
    assert [e.mode for e in events if isinstance(e, Interruption)] == ["vad"]


def test_batched_vad_gives_the_same_decisions_as_per_call_vad(
    model: SileroModel, call: tuple[np.ndarray, np.ndarray]
) -> None:
    caller, agent = call
    single = run(TurnPipeline(options(mode="vad"), VadStream(model, RATE)), caller, agent)
    batch = VadBatch(model, RATE)
    pipelines = [TurnPipeline(options(mode="vad"), batch.stream()) for _ in range(3)]
    shifted = [caller, np.roll(caller, 800), np.roll(caller, 1600)]
    results: list[list[Event]] = [[] for _ in pipelines]
    frames = [list(iter_frames(c, RATE)) for c in shifted]
    agent_frames = list(iter_frames(agent, RATE))
    speaking = [False] * 3
    for i, a in enumerate(agent_frames):
        for k, p in enumerate(pipelines):
            if np.abs(a).max() > 100 and not speaking[k]:
                results[k] += p.agent_speech_start()
                speaking[k] = True
            p.vad.feed(frames[k][i])
        chunks = batch.process()
        for k, p in enumerate(pipelines):
            results[k] += p.process_frame(frames[k][i], a if speaking[k] else None, chunks.get(p.vad, []))
    assert [e.to_dict() for e in results[0]] == [e.to_dict() for e in single]
    onsets = [next(e.onset for e in r if isinstance(e, Interruption)) for r in results]
    assert onsets[1] - onsets[0] == pytest.approx(0.1, abs=0.04)
    assert onsets[2] - onsets[0] == pytest.approx(0.2, abs=0.04)


def test_echo_gate_tells_echo_from_double_talk() -> None:
    gate = EchoGate()
    agent = espeak("We have openings on Tuesday and Friday.")[:8000]
    echo = (agent.astype(np.float32) * 0.05).astype(np.int16)  # -26 dB
    talk = espeak("wait", voice="en-gb")
    explained = [
        gate.update((i + 1) * 0.02, e, a)
        for i, (e, a) in enumerate(zip(iter_frames(echo, RATE), iter_frames(agent, RATE), strict=True))
    ]
    assert np.mean(explained) > 0.9
    gate2 = EchoGate()
    mixed = place(1.0, [(0.0, echo), (0.2, talk)])
    flags = [
        gate2.update((i + 1) * 0.02, m, a)
        for i, (m, a) in enumerate(zip(iter_frames(mixed, RATE), iter_frames(agent, RATE), strict=True))
    ]
    spoken = [frame_db(f) > -30 for f in iter_frames(place(1.0, [(0.2, talk)]), RATE)]
    assert sum(spoken) >= 5
    assert not any(f for f, s in zip(flags, spoken, strict=True) if s)  # the caller's own word is never echo
    assert not EchoGate().update(0.02, echo[:160], np.zeros(160, dtype=np.int16))  # agent silent: no gating


def test_echo_gate_learns_a_loud_echo_path_and_still_hears_the_caller() -> None:
    """A hybrid returning the agent only ~9 dB down at 40 ms: past the fixed 20 dB margin, so the gate
    must learn the path from the line itself; the caller talking over the echo still passes."""
    agent = np.concatenate(
        [espeak("We have openings on Tuesday and Friday."), espeak("Please bring your insurance card.")]
    )
    delay = int(0.04 * RATE)
    echo = np.zeros_like(agent, dtype=np.float32)
    echo[delay:] = agent[:-delay].astype(np.float32) * 0.35  # -9 dB
    n_frames = len(agent) // 160
    learn = n_frames * 2 // 3
    talk = espeak("wait, I have a question", voice="en-gb")
    line = echo.copy()
    at = learn * 160
    line[at : at + len(talk)] += talk[: len(line) - at].astype(np.float32)
    line16 = np.clip(line, -32768, 32767).astype(np.int16)

    def run(gate: EchoGate, caller: np.ndarray) -> list[bool]:
        return [
            gate.update((i + 1) * 0.02, caller[i * 160 : (i + 1) * 160], agent[i * 160 : (i + 1) * 160])
            for i in range(n_frames)
        ]

    fixed = run(EchoGate(margin_db=20.0, min_correlation=2.0), echo.astype(np.int16))  # never learns
    gate = EchoGate()
    learned = run(gate, echo.astype(np.int16))
    audible = [frame_db(agent[i * 160 : (i + 1) * 160]) > -40 for i in range(n_frames)]
    late = [k for k in range(n_frames // 3, n_frames) if audible[k]]
    assert np.mean([fixed[k] for k in late]) < 0.5  # the fixed margin lets most of this echo through
    assert np.mean([learned[k] for k in late]) > 0.9
    assert gate.echo_path is not None and gate.echo_path[0] in (1, 2, 3) and 6 < gate.echo_path[1] < 14

    flags = run(EchoGate(), line16)

    def level(x: np.ndarray, k: int) -> float:
        return frame_db(x[k * 160 : (k + 1) * 160])

    # double talk: caller frames at most 2 dB below the loudest agent audio that can echo into them
    spoken = [
        k
        for k in range(learn, min(n_frames, learn + len(talk) // 160))
        if level(talk, k - learn) > max(-40.0, *(level(agent, j) for j in range(k - 3, k + 1))) - 2
    ]
    assert len(spoken) >= 5
    assert not any(flags[k] for k in spoken)  # the caller's own words are never taken for echo
