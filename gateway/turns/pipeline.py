"""One call's turn pipeline: caller frames -> VAD -> detectors -> TurnEngine -> events.

The same pipeline runs live (fed by a CallSession from its transport) and offline (fed by
`gateway replay` from a stereo recording), so what replay reports is what a live call would do.
It is synchronous and owns no I/O: the caller supplies frames with their time and says when the
agent's audio starts and stops being audible.

Detector answers are checked against `interruption.detector_timeout` with an injected clock
(`perf_counter` by default): an exception or a late answer makes the engine fall back to VAD mode.

Lexical checks (`interruption.lexical_check`): the engine's `LexicalCheck` events name a span of caller
audio; the pipeline cuts it from its ring of recent caller audio and hands it to a `LexicalRunner`, and
feeds the runner's finished verdicts back to the engine at the start of a later frame. Live calls use a
worker thread (`ThreadedLexicalRunner`); replay decodes inline and releases each verdict after the
decode's measured CPU time (`InlineLexicalRunner`), so no frame waits for a decode in either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.audio.frames import Framer, Pcm
from gateway.audio.resample import StreamResampler
from gateway.audio.ringbuffer import RingBuffer
from gateway.turns.detectors import BargeInDetector, BargeInStream, EndOfTurnDetector, EndOfTurnStream
from gateway.turns.echo_gate import EchoGate
from gateway.turns.engine import TurnEngine
from gateway.turns.events import Event, Word
from gateway.turns.lexical import LexicalCheck, LexicalJob, LexicalRunner
from gateway.turns.options import TurnHandlingOptions
from gateway.turns.vad import SpeechEnded, SpeechStarted, VadChunk, VadSegmenter, VadStream

# How often the end-of-turn detector is asked again while silence grows.
EOT_INTERVAL = 0.1
# Caller audio kept for lexical checks (an overlap is decided within a few seconds).
LEXICAL_HISTORY_SECONDS = 8.0


@dataclass
class DetectorCost:
    """Running totals of detector time, for metrics and benchmarks."""

    requests: int = 0
    seconds: float = 0.0
    worst: float = 0.0

    def add(self, seconds: float) -> None:
        self.requests += 1
        self.seconds += seconds
        self.worst = max(self.worst, seconds)


class TurnPipeline:
    def __init__(
        self,
        options: TurnHandlingOptions,
        vad: VadStream,
        *,
        bargein: BargeInDetector | None = None,
        end_of_turn: EndOfTurnDetector | None = None,
        has_stt: bool = False,
        clock: Callable[[], float] = time.perf_counter,
        lexical: LexicalRunner | None = None,
    ) -> None:
        self.options = options
        self._lexical = lexical if options.interruption.lexical_check.enabled else None
        self.engine = TurnEngine(options, has_stt=has_stt, has_lexical=self._lexical is not None)
        self.vad = vad
        self.segmenter = VadSegmenter(options.vad)
        self.sample_rate = options.vad.sample_rate
        self._bargein: BargeInStream | None = bargein.open_stream() if bargein else None
        self._bargein_feed = (
            _RateAdapter(self.sample_rate, bargein.sample_rate) if bargein is not None else None
        )
        self.echo_gate = EchoGate()
        self._eot: EndOfTurnStream | None = end_of_turn.open_stream() if end_of_turn else None
        self._eot_feed = (
            _RateAdapter(self.sample_rate, end_of_turn.sample_rate) if end_of_turn is not None else None
        )
        self._clock = clock
        self._caller_ring = (
            RingBuffer(int(LEXICAL_HISTORY_SECONDS * self.sample_rate)) if self._lexical is not None else None
        )
        self.lexical_checks = 0
        self._t = 0.0
        self._last_bargein_query = -1.0
        self._last_eot_query = -1.0
        self.bargein_cost = DetectorCost()
        self.eot_cost = DetectorCost()
        if self._bargein is None and options.interruption.mode == "adaptive":
            # Adaptive mode with no detector at all: VAD decides, and the events say so.
            self._pending_fallback = "no barge-in detector available"
        else:
            self._pending_fallback = ""

    @property
    def t(self) -> float:
        """End of the audio processed so far, in seconds."""
        return self._t

    def agent_speech_start(self, *, new_turn: bool = True) -> list[Event]:
        return self.engine.agent_speech_start(self._t, new_turn=new_turn)

    def agent_speech_end(self, end: float | None = None) -> list[Event]:
        return self.engine.agent_speech_end(self._t, end)

    def transcript(
        self, words: list[Word], *, final: bool = True, end_of_utterance: bool = False
    ) -> list[Event]:
        return self.engine.transcript(self._t, words, final=final, end_of_utterance=end_of_utterance)

    def process_frame(
        self, caller: Pcm, agent: Pcm | None = None, vad_chunks: list[VadChunk] | None = None
    ) -> list[Event]:
        """Feed one frame of caller audio (and the agent audio audible during it).

        `vad_chunks`: the VAD results for this frame when the caller ran VAD for many calls in one
        batch (`VadBatch`, after `self.vad.feed(caller)`); by default the pipeline runs its own stream.
        """
        out: list[Event] = []
        if self._pending_fallback:
            out += self.engine.bargein_failed(self._t, self._pending_fallback)
            self._pending_fallback = ""
        if self._lexical is not None:
            for result in self._lexical.ready(self._t):
                out += self.engine.lexical_verdict(self._t, result.onset, result.verdict, result.asked)
        if self._caller_ring is not None:
            self._caller_ring.write(caller)
        if agent is None:
            agent = np.zeros_like(caller)
        if self._bargein is not None and self._bargein_feed is not None:
            for caller_frame, agent_frame in self._bargein_feed.push(caller, agent):
                self._bargein.push(caller_frame, agent_frame)
        if self._eot is not None and self._eot_feed is not None:
            for caller_frame, _ in self._eot_feed.push(caller, agent):
                self._eot.push(caller_frame)
        self.echo_gate.update(self._t + len(caller) / self.sample_rate, caller, agent)
        for chunk in self.vad.push(caller) if vad_chunks is None else vad_chunks:
            if chunk.probability > 0.0 and self.echo_gate.explains(chunk.start, chunk.end):
                chunk = VadChunk(chunk.start, chunk.end, 0.0)
            for vad_event in self.segmenter.update(chunk):
                if isinstance(vad_event, SpeechStarted):
                    out += self.engine.user_speech_start(vad_event.t, vad_event.onset)
                elif isinstance(vad_event, SpeechEnded):
                    out += self.engine.user_speech_end(vad_event.t, vad_event.end)
            if self.segmenter.speaking:
                out += self.engine.user_speech_progress(chunk.end, self.segmenter.voiced_duration)
        self._t += len(caller) / self.sample_rate
        out += self.engine.tick(self._t)
        out += self._ask_bargein()
        out += self._ask_end_of_turn()
        return self._run_lexical_checks(out)

    def finish(self) -> list[Event]:
        """The audio ended: close the caller's open utterance where its voiced audio ended."""
        if not self.segmenter.speaking:
            return []
        end = self.segmenter.last_voiced_end
        return self.engine.user_speech_end(self._t, self._t if end is None else end)

    def _ask_bargein(self) -> list[Event]:
        engine, stream = self.engine, self._bargein
        onset = engine.overlap_onset
        if stream is None or onset is None or not engine.wants_bargein_probability:
            return []
        if self._t - self._last_bargein_query < self.options.interruption.detector_interval - 1e-6:
            return []
        self._last_bargein_query = self._t
        started = self._clock()
        try:
            probability = stream.probability(onset)
        except Exception as exc:  # any detector failure must not end the call
            return engine.bargein_failed(self._t, f"detector error: {exc}")
        elapsed = self._clock() - started
        self.bargein_cost.add(elapsed)
        if elapsed > self.options.interruption.detector_timeout:
            return engine.bargein_failed(self._t, f"detector answered in {elapsed * 1000:.0f} ms")
        return engine.bargein_probability(self._t, probability)

    def _run_lexical_checks(self, events: list[Event]) -> list[Event]:
        """Hand the engine's lexical check requests to the runner; they are not passed on."""
        if self._lexical is None or self._caller_ring is None:
            return events
        out: list[Event] = []
        for event in events:
            if not isinstance(event, LexicalCheck):
                out.append(event)
                continue
            ring = self._caller_ring
            start = max(ring.available_from, round(event.start * self.sample_rate))
            stop = min(ring.total_written, round(event.t * self.sample_rate))
            if stop <= start:
                continue
            self.lexical_checks += 1
            self._lexical.submit(LexicalJob(event.onset, event.t, ring.read(start, stop), self.sample_rate))
        return out

    def _ask_end_of_turn(self) -> list[Event]:
        engine, stream = self.engine, self._eot
        end = engine.pending_turn_end
        if stream is None or end is None or not engine.wants_eot_probability:
            return []
        if self._t - self._last_eot_query < EOT_INTERVAL - 1e-6:
            return []
        self._last_eot_query = self._t
        started = self._clock()
        try:
            probability = stream.probability(end, engine.pending_turn_words)
        except Exception:  # fall back to the max delay for this turn
            return []
        self.eot_cost.add(self._clock() - started)
        return engine.eot_probability(self._t, probability)


class _RateAdapter:
    """Caller and agent audio at the call's rate -> exact 20 ms frame pairs at a detector's rate."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._resamplers = (
            (StreamResampler(from_rate, to_rate), StreamResampler(from_rate, to_rate))
            if from_rate != to_rate
            else None
        )
        self._framers = (Framer(to_rate), Framer(to_rate))

    def push(self, caller: Pcm, agent: Pcm) -> list[tuple[Pcm, Pcm]]:
        if self._resamplers is None:
            return [(caller, agent)]
        caller_frames = self._framers[0].push(self._resamplers[0].process(caller))
        agent_frames = self._framers[1].push(self._resamplers[1].process(agent))
        return list(zip(caller_frames, agent_frames, strict=False))
