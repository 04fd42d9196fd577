"""Batch engines behind the streaming STT interface.

Theory of operation: the stream keeps the caller's audio of the last `history` seconds in a ring
buffer indexed by absolute sample number, so a time on the call timeline is a sample index. When
VAD reports an utterance (`end_of_speech(onset, end)`), the span (with a little padding) is copied
and handed to the engine, which runs in the engine's own worker thread (one per engine instance,
shared by every call: the 2-core machines must not run several decoders at once, and the event
loop must never wait for one) or, for engines with a `recipe`, in the decoder processes of
`pool.py` (engines that hold the GIL, such as PocketSphinx, would stop the host's event loop
while they decode). Each utterance yields one final `Transcript` (possibly with no
words) whose word times are on the call timeline and whose `latency` is measured from the VAD end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gateway.audio.frames import Pcm
from gateway.audio.resample import resample
from gateway.audio.ringbuffer import RingBuffer
from gateway.backends.base import BackendError, SttCapabilities, Transcript, Usage
from gateway.backends.stt import pool as decoder_pool
from gateway.backends.stt.pool import QueueFull, Recipe
from gateway.backends.stt.results import TranscriptQueue
from gateway.turns.events import Word


@dataclass(frozen=True)
class EngineWord:
    """A word from an engine, in seconds from the start of the audio it was given."""

    text: str
    start: float
    end: float


_pending = 0  # utterances handed to a batch engine in this process and not transcribed yet
_pending_lock = threading.Lock()


def pending_utterances() -> int:
    """Utterances of every call in this process waiting for (or in) a local STT decoder: the STT
    queue that admission control watches."""
    return _pending


def _count_pending(delta: int) -> None:
    global _pending
    with _pending_lock:
        _pending += delta


class BatchEngine(ABC):
    """A recogniser that transcribes a whole utterance at `rate` Hz (called in a worker thread)."""

    name: str
    model: str = ""
    rate: int = 16000

    # How a decoder process rebuilds this engine (pool.py); None: it decodes in its own thread.
    recipe: Recipe | None = None

    @abstractmethod
    def transcribe(self, pcm: Pcm, language: str) -> list[EngineWord]: ...


class PooledEngine(BatchEngine):
    """An engine that lives in the decoder processes (pool.py): here only its name and recipe.
    Without a pool (`configure(processes=0)`) it is built here and decodes in the thread."""

    def __init__(self, recipe: Recipe, name: str, model: str, rate: int) -> None:
        self.recipe = self._recipe = recipe
        self.name = name
        self.model = model
        self.rate = rate
        self._local: BatchEngine | None = None
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm, language: str) -> list[EngineWord]:
        with self._lock:
            if self._local is None:
                self._local = self._recipe.factory(*self._recipe.args)
        return self._local.transcribe(pcm, language)

    def warm(self) -> None:
        """Load the model in the decoder processes; waits unless called from an event loop."""
        pool = decoder_pool.pool()
        if pool is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pool.warm(self._recipe)  # start-up (AgentRunner.warm_up): wait, so failures show now


class BatchStt:
    """The `STT` of a batch engine: streams share the engine and its single worker thread."""

    capabilities = SttCapabilities(streaming=False, aligned_transcript=True, languages=("en",))

    def __init__(self, engine: BatchEngine, *, padding: float = 0.15, history: float = 60.0) -> None:
        self.name = engine.name
        self.engine = engine
        self.padding = padding
        self.history = history
        self._usage = Usage(provider=engine.name, model=engine.model)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stt-{engine.name}")

    def stream(self, *, sample_rate: int, language: str = "en") -> BatchSttStream:
        return BatchSttStream(self, sample_rate, language)

    def usage(self) -> Usage:
        with self._lock:
            return Usage(**vars(self._usage))

    def transcribe_span(self, pcm: Pcm, sample_rate: int, language: str) -> list[EngineWord]:
        """Resample to the engine's rate and transcribe (in the worker thread); counts usage."""
        audio = resample(pcm, sample_rate, self.engine.rate) if sample_rate != self.engine.rate else pcm
        words = self.engine.transcribe(audio, language)
        with self._lock:
            self._usage.requests += 1
            self._usage.audio_seconds += len(pcm) / sample_rate
        return words

    async def run(self, pcm: Pcm, sample_rate: int, language: str) -> list[EngineWord]:
        pool = decoder_pool.pool()
        recipe = self.engine.recipe
        _count_pending(1)
        try:
            if pool is None or recipe is None:
                loop = asyncio.get_running_loop()
                transcribe = self.transcribe_span
                return await loop.run_in_executor(self._executor, transcribe, pcm, sample_rate, language)
            try:
                words: list[EngineWord] = await pool.decode(recipe, pcm, sample_rate, language)
            except QueueFull as exc:
                raise BackendError(f"{self.name}: utterance not transcribed: {exc}") from None
            with self._lock:
                self._usage.requests += 1
                self._usage.audio_seconds += len(pcm) / sample_rate
            return words
        finally:
            _count_pending(-1)


@dataclass(frozen=True)
class _Job:
    start: int  # absolute sample index of the copied span
    pcm: Pcm
    onset: float
    end: float
    requested: float  # time.monotonic() of the end_of_speech call
    behind: float  # seconds of audio pushed after `end` when it was called


_CLOSED = object()


class BatchSttStream:
    def __init__(self, stt: BatchStt, sample_rate: int, language: str) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self._stt = stt
        self.sample_rate = sample_rate
        self.language = language
        self._ring = RingBuffer(max(1, int(stt.history * sample_rate)))
        self._jobs: asyncio.Queue[_Job | object] = asyncio.Queue()
        self._out = TranscriptQueue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    def push(self, pcm: Pcm) -> None:
        if not self._closed:
            self._ring.write(np.asarray(pcm, dtype=np.int16))

    def end_of_speech(self, onset: float, end: float) -> None:
        if self._closed or end <= onset:
            return
        rate = self.sample_rate
        written = self._ring.total_written
        pad = int(self._stt.padding * rate)
        start = max(self._ring.available_from, int(onset * rate) - pad, 0)
        stop = min(written, int(end * rate) + pad)
        if stop <= start:
            return
        job = _Job(
            start=start,
            pcm=self._ring.read(start, stop),
            onset=onset,
            end=end,
            requested=time.monotonic(),
            behind=max(0.0, written / rate - end),
        )
        self._jobs.put_nowait(job)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is _CLOSED:
                break
            assert isinstance(job, _Job)
            try:
                words = await self._stt.run(job.pcm, self.sample_rate, self.language)
            except Exception as exc:  # the engine failed on this utterance: report, keep the stream
                self._out.put(BackendError(f"{self._stt.name}: transcription failed: {exc}"))
                continue
            latency = job.behind + (time.monotonic() - job.requested)
            self._out.put(
                Transcript(
                    words=self._on_timeline(words, job),
                    final=True,
                    end_of_utterance=True,
                    latency=latency,
                )
            )

    def _on_timeline(self, words: list[EngineWord], job: _Job) -> tuple[Word, ...]:
        """Engine times (from the span start) -> call timeline, clamped into the span, monotonic."""
        base = job.start / self.sample_rate
        last = base + len(job.pcm) / self.sample_rate
        out: list[Word] = []
        floor = base
        for w in words:
            text = w.text.strip()
            if not text:
                continue
            start = min(max(base + w.start, floor), last)
            end = min(max(base + w.end, start), last)
            out.append(Word(text, round(start, 3), round(end, 3)))
            floor = start
        return tuple(out)

    def results(self) -> AsyncIterator[Transcript]:
        return self._out.results()

    async def aclose(self) -> None:
        """Finish the utterances already handed over, then end `results()`."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put_nowait(_CLOSED)
        if self._worker is not None:
            try:
                await self._worker
            finally:
                self._out.close()
        else:
            self._out.close()
