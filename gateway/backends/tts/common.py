"""Shared by the TTS backends: sentence splitting, word timing estimates, sentence-by-sentence streaming.

Engines synthesise one sentence at a time in the backend's single worker thread (never on the event
loop); the first sentence's audio is yielded as soon as it exists, so the caller hears the agent
while later sentences are still being synthesised. Closing the iterator stops after the sentence in
progress.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gateway.audio.frames import Pcm
from gateway.audio.resample import resample
from gateway.backends.base import AudioChunk, BackendError, Usage, WordTiming

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (at . ! ? ; : followed by a space, and at line breaks), stripped, non-empty."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def text_words(text: str) -> list[str]:
    return text.split()


def words_by_characters(words: list[str], start: float, end: float) -> list[WordTiming]:
    """Timings spread over [start, end] in proportion to each word's length (plus one for the gap)."""
    if not words:
        return []
    weights = [len(w) + 1 for w in words]
    total = float(sum(weights))
    out: list[WordTiming] = []
    t = start
    for word, weight in zip(words, weights, strict=True):
        d = (end - start) * weight / total
        out.append(WordTiming(word, t, t + d * len(word) / weight))
        t += d
    return out


def voiced_span(pcm: Pcm, rate: int, threshold: int = 300) -> tuple[float, float]:
    """(first, last) time of samples louder than `threshold`; the whole span if none are."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if len(loud) == 0:
        return 0.0, len(pcm) / rate
    return float(loud[0]) / rate, float(loud[-1] + 1) / rate


@dataclass(frozen=True)
class Sentence:
    """One synthesised sentence: audio at the engine's rate and word timings from its start."""

    pcm: Pcm
    rate: int
    words: list[WordTiming]


SentenceEngine = Callable[[str], Sentence]


class SentenceStreamer:
    """`synthesize()` for engines that turn one sentence into audio with word timings."""

    def __init__(self, name: str, model: str, engine: SentenceEngine, chunk_seconds: float = 0.5) -> None:
        self.name = name
        self._engine = engine
        self._chunk_seconds = chunk_seconds
        self._usage = Usage(provider=name, model=model)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tts-{name}")

    def usage(self) -> Usage:
        with self._lock:
            return Usage(**vars(self._usage))

    async def synthesize(self, text: str, *, sample_rate: int) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        offset = 0.0
        with self._lock:
            self._usage.requests += 1
            self._usage.characters += len(text)
        for sentence_text in split_sentences(text):
            try:
                sentence = await loop.run_in_executor(self._executor, self._engine, sentence_text)
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"{self.name}: synthesis failed: {exc}") from exc
            pcm = sentence.pcm
            if sentence.rate != sample_rate:
                pcm = resample(pcm, sentence.rate, sample_rate)
            duration = len(pcm) / sample_rate
            with self._lock:
                self._usage.audio_seconds += duration
            for chunk in split_chunks(pcm, sample_rate, sentence.words, offset, self._chunk_seconds):
                yield chunk
            offset += duration


def split_chunks(
    pcm: Pcm, rate: int, words: list[WordTiming], offset: float, chunk_seconds: float
) -> list[AudioChunk]:
    """`pcm` cut into chunks of about `chunk_seconds`, each carrying the words that start inside it."""
    step = max(1, int(chunk_seconds * rate))
    shifted = [WordTiming(w.text, round(w.start + offset, 4), round(w.end + offset, 4)) for w in words]
    chunks: list[AudioChunk] = []
    for i in range(0, max(len(pcm), 1), step):
        lo = offset + i / rate
        hi = offset + min(len(pcm), i + step) / rate
        last = i + step >= len(pcm)
        inside = tuple(w for w in shifted if lo <= w.start < hi or (last and w.start >= hi))
        if i == 0:
            inside = tuple(w for w in shifted if w.start < lo) + inside
        chunks.append(AudioChunk(pcm=pcm[i : i + step], sample_rate=rate, words=inside))
    return chunks
