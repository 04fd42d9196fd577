"""Voice activity detection: Silero probabilities per 32 ms chunk, and speech segments from them.

Theory of operation
-------------------
Two layers, kept apart so the second is a pure state machine that tests and replay drive directly:

1. **Probabilities** (`VadStream`, `VadBatch`). A `VadStream` is one call's audio at one rate. It
   takes frames of any length (normally 20 ms of int16), cuts them into 32 ms chunks, prepends the
   context samples of the previous chunk and keeps Silero's recurrent state, and returns one
   `VadChunk(start, end, probability)` per completed chunk, on the stream's own timeline (0 = first
   sample pushed). `VadStream.push` runs the model for that stream alone. A `VadBatch` runs the
   pending chunks of many streams in **one** ONNX call per step: a session process with many calls
   `feed`s each call's frames as they arrive and calls `process()` once per tick (or `push_many`
   for both at once). Rows of the batch are independent, so the probabilities equal (to float
   rounding) those of running each stream alone.

2. **Segments** (`VadSegmenter`). Fed `VadChunk`s, it says `SpeechStarted` / `SpeechEnded`, with the
   semantics of LiveKit's Silero VAD:
   - silent: a chunk is voiced when p >= activation_threshold. The first voiced chunk opens a
     candidate at its start; an unvoiced chunk cancels the candidate; once the voiced audio of the
     candidate lasts >= min_speech_duration, speech starts (onset = the candidate's start).
   - speaking: a chunk is voiced when p >= end_threshold (hysteresis: lower than activation). Speech
     ends at the first chunk whose end is >= min_silence_duration after the end of the last voiced
     chunk.
   Every event carries `t`, the end of the chunk that decided it, so latencies are `t - onset` /
   `t - end`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.turns.options import VadOptions
from gateway.turns.silero import SileroModel

# Chunk durations are sums of 0.032 s; compare them with this slack so 0.064 >= 0.064 holds.
_EPS = 1e-9
_SCALE = np.float32(1.0 / 32768.0)


@dataclass(frozen=True)
class VadChunk:
    """Speech probability of one 32 ms chunk; times in seconds on the stream's timeline."""

    start: float
    end: float
    probability: float


class VadStream:
    """Per-call streaming state: partial chunk, context samples and Silero's recurrent state."""

    def __init__(self, model: SileroModel, rate: int) -> None:
        self.model = model
        self.rate = rate
        self.chunk_samples = model.chunk_samples(rate)  # raises ValueError for other rates
        self.context_samples = model.context_samples(rate)
        self._window = np.zeros(self.context_samples + self.chunk_samples, dtype=np.float32)
        self._fill = self.context_samples
        self._ready: deque[NDArray[np.float32]] = deque()
        self._state = model.initial_state(1)
        self._samples_pushed = 0
        self._chunks_done = 0

    @property
    def samples_pushed(self) -> int:
        """Samples fed so far (the stream's clock, in samples)."""
        return self._samples_pushed

    @property
    def pending(self) -> int:
        """Complete chunks fed but not yet run through the model."""
        return len(self._ready)

    @property
    def chunk_duration(self) -> float:
        return self.chunk_samples / self.rate

    def reset(self) -> None:
        """Forget everything: state, context, buffered samples and the timeline (back to 0)."""
        self._window[:] = 0.0
        self._fill = self.context_samples
        self._ready.clear()
        self._state = self.model.initial_state(1)
        self._samples_pushed = 0
        self._chunks_done = 0

    def feed(self, frame: NDArray[np.int16]) -> None:
        """Buffer `frame` (int16, any length) without running the model; see `VadBatch.process`."""
        if frame.dtype != np.int16 or frame.ndim != 1:
            raise ValueError(f"frames must be 1-D int16, got {frame.dtype} with shape {frame.shape}")
        window = self._window
        size = len(window)
        count = len(frame)
        pos = 0
        while pos < count:
            take = min(size - self._fill, count - pos)
            # int16 -> float32 / 32768 (a power of two: exact), written straight into the window
            np.multiply(frame[pos : pos + take], _SCALE, out=window[self._fill : self._fill + take])
            self._fill += take
            pos += take
            if self._fill == size:
                self._ready.append(window.copy())
                window[: self.context_samples] = window[size - self.context_samples :]
                self._fill = self.context_samples
        self._samples_pushed += count

    def push(self, frame: NDArray[np.int16]) -> list[VadChunk]:
        """Feed `frame` and run this stream alone; returns the chunks the frame completed."""
        self.feed(frame)
        chunks = []
        while self._ready:
            window = self._ready[0]
            probs, state = self.model.infer(window[None, :], self._state, self.rate)
            chunks.append(self._commit(float(probs[0]), state))
        return chunks

    # -- used by VadBatch -------------------------------------------------------------------------

    def _commit(self, probability: float, state: NDArray[np.float32]) -> VadChunk:
        """Record the model's answer for the oldest pending chunk."""
        self._ready.popleft()
        self._state = state
        index = self._chunks_done
        self._chunks_done += 1
        return VadChunk(
            start=index * self.chunk_samples / self.rate,
            end=(index + 1) * self.chunk_samples / self.rate,
            probability=probability,
        )


class VadBatch:
    """Runs the pending chunks of many streams (same model, same rate) in one ONNX call per step.

    Streams register with the batch (`stream()` makes and registers one; `add` / `remove`).
    Per tick a session either `feed`s each stream as frames arrive and calls `process()`, or
    calls `push_many([(stream, frame), ...])`. A step takes at most one chunk from each stream
    (recurrent state), so a tick with 20 ms frames costs exactly 0 or 1 runs.
    """

    def __init__(self, model: SileroModel, rate: int) -> None:
        self.model = model
        self.rate = rate
        self.chunk_samples = model.chunk_samples(rate)  # raises ValueError for other rates
        self._streams: dict[VadStream, None] = {}
        self.runs = 0  # ONNX runs made so far (for tests and benchmarks)

    def stream(self) -> VadStream:
        """A new stream, registered with this batch."""
        stream = VadStream(self.model, self.rate)
        self._streams[stream] = None
        return stream

    def add(self, stream: VadStream) -> None:
        if stream.model is not self.model or stream.rate != self.rate:
            raise ValueError("a VadBatch only takes streams of its own model and sample rate")
        self._streams[stream] = None

    def remove(self, stream: VadStream) -> None:
        self._streams.pop(stream, None)

    @property
    def streams(self) -> tuple[VadStream, ...]:
        return tuple(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream: object) -> bool:
        return stream in self._streams

    def process(self) -> dict[VadStream, list[VadChunk]]:
        """Run every registered stream's pending chunks; chunks per stream (only streams that had any)."""
        return self._run(self._streams)

    def push_many(self, items: Sequence[tuple[VadStream, NDArray[np.int16]]]) -> list[list[VadChunk]]:
        """Feed each (stream, frame) and run them all together: the chunks completed by each item.

        A stream may appear more than once (its frames are fed in order); each chunk is returned
        with the item whose frame completed it. Chunks left pending by an earlier `feed` of a stream
        are returned with that stream's first item.
        """
        spans: list[tuple[int, int]] = []
        for stream, frame in items:
            if stream not in self._streams:
                raise ValueError("push_many got a stream that is not registered with this batch")
            before = stream.samples_pushed
            stream.feed(frame)
            spans.append((before, stream.samples_pushed))
        done = self._run(dict.fromkeys(stream for stream, _ in items))
        first: dict[VadStream, int] = {}
        results: list[list[VadChunk]] = []
        for i, ((stream, _), (before, after)) in enumerate(zip(items, spans, strict=True)):
            first.setdefault(stream, i)
            end_lo = -1 if first[stream] == i else before
            results.append([c for c in done.get(stream, ()) if end_lo < round(c.end * self.rate) <= after])
        return results

    def _run(self, streams: Iterable[VadStream]) -> dict[VadStream, list[VadChunk]]:
        out: dict[VadStream, list[VadChunk]] = {}
        active = [s for s in streams if s.pending]
        while active:
            windows = np.stack([s._ready[0] for s in active])
            state = np.concatenate([s._state for s in active], axis=1)
            probs, new_state = self.model.infer(windows, state, self.rate)
            self.runs += 1
            for i, s in enumerate(active):
                chunk = s._commit(float(probs[i]), new_state[:, i : i + 1, :].copy())
                out.setdefault(s, []).append(chunk)
            active = [s for s in active if s.pending]
        return out


# -- segmentation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechStarted:
    """Speech confirmed at `t` (end of the deciding chunk); it began at `onset`."""

    t: float
    onset: float


@dataclass(frozen=True)
class SpeechEnded:
    """Speech over at `t` (end of the deciding chunk); last voiced audio ended at `end`.

    `voiced` is the summed duration of the utterance's voiced chunks (<= end - onset).
    """

    t: float
    end: float
    onset: float
    voiced: float


VadEvent = SpeechStarted | SpeechEnded


class VadSegmenter:
    """Pure state machine from `VadChunk`s to `SpeechStarted` / `SpeechEnded` (no model inside).

    States: silent (possibly with a candidate onset) and speaking. Chunks must come in time
    order; a chunk that starts before the previous one ended is an error.
    """

    def __init__(self, options: VadOptions) -> None:
        self.options = options
        self.reset()

    def reset(self) -> None:
        """Back to silent, with no history."""
        self._clock: float | None = None  # end of the last chunk seen
        self._speaking = False
        self._candidate_onset: float | None = None
        self._candidate_voiced = 0.0
        self._onset: float | None = None
        self._voiced = 0.0
        self._last_voiced_end: float | None = None

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def onset(self) -> float | None:
        """Start of the current utterance's first voiced chunk; None while silent."""
        return self._onset if self._speaking else None

    @property
    def padded_onset(self) -> float | None:
        """`onset` less prefix_padding_duration (not before 0): where to start keeping its audio."""
        onset = self.onset
        return None if onset is None else max(0.0, onset - self.options.prefix_padding_duration)

    @property
    def candidate_onset(self) -> float | None:
        """While silent: start of voiced audio not yet long enough to be speech, if any."""
        return None if self._speaking else self._candidate_onset

    @property
    def voiced_duration(self) -> float:
        """Voiced seconds of the current utterance so far; 0 while silent."""
        return self._voiced if self._speaking else 0.0

    @property
    def last_voiced_end(self) -> float | None:
        """End of the last voiced chunk of the current (or most recent) utterance.

        Voiced chunks of a candidate that was cancelled before becoming speech do not count.
        """
        return self._last_voiced_end

    def update(self, chunk: VadChunk) -> list[VadEvent]:
        if chunk.end < chunk.start:
            raise ValueError(f"chunk ends before it starts: {chunk}")
        if self._clock is not None and chunk.start < self._clock - 1e-6:
            raise ValueError(f"chunk at {chunk.start:.3f} s arrived after one ending at {self._clock:.3f} s")
        self._clock = chunk.end
        duration = chunk.end - chunk.start
        opts = self.options
        if not self._speaking:
            if chunk.probability < opts.activation_threshold:
                self._candidate_onset = None
                self._candidate_voiced = 0.0
                return []
            if self._candidate_onset is None:
                self._candidate_onset = chunk.start
                self._candidate_voiced = 0.0
            self._candidate_voiced += duration
            if self._candidate_voiced + _EPS < opts.min_speech_duration:
                return []
            self._speaking = True
            self._onset = self._candidate_onset
            self._voiced = self._candidate_voiced
            self._last_voiced_end = chunk.end
            self._candidate_onset = None
            self._candidate_voiced = 0.0
            return [SpeechStarted(t=chunk.end, onset=self._onset)]

        assert self._onset is not None and self._last_voiced_end is not None
        if chunk.probability >= opts.end_threshold:
            self._voiced += duration
            self._last_voiced_end = chunk.end
            return []
        if chunk.end - self._last_voiced_end + _EPS < opts.min_silence_duration:
            return []
        ended = SpeechEnded(t=chunk.end, end=self._last_voiced_end, onset=self._onset, voiced=self._voiced)
        self._speaking = False
        self._onset = None
        self._voiced = 0.0
        return [ended]
