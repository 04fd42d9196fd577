"""Agent audio on its way to the caller, 20 ms at a time, and exactly which of it was heard.

The session pulls one frame per inbound caller frame (`next_frame`), so the playout position is
on the call's own clock. Each agent reply is a `Speech`: TTS segments (sentences) appended as they
are synthesised, with word timings relative to each segment. Pausing keeps the position, so a
resumed false interruption continues from the exact sample it stopped at; clearing drops what is
left and reports the words the caller heard. `edge_delay` accounts for audio an edge has accepted
but not yet played out (jitter buffers, carrier marks), so "heard" means heard, not "sent".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.audio.frames import Pcm, samples_per_frame
from gateway.backends.base import WordTiming


@dataclass
class _Word:
    text: str
    start: int  # sample offsets within the speech
    end: int


@dataclass
class Speech:
    """One agent reply: its audio and words, and how far it has been played."""

    id: int
    audio: list[Pcm] = field(default_factory=list)
    words: list[_Word] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    total: int = 0  # samples appended
    position: int = 0  # samples played
    complete: bool = False  # no more segments will be appended
    started: bool = False  # at least one frame was played

    @property
    def text(self) -> str:
        return " ".join(p.strip() for p in self.text_parts if p.strip())

    @property
    def finished(self) -> bool:
        return self.complete and self.position >= self.total


class Playout:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frame = samples_per_frame(sample_rate)
        self.paused = False
        self.edge_delay = 0.0
        self._ids = itertools.count(1)
        self._queue: list[Speech] = []
        self._buffer = np.zeros(0, dtype=np.int16)  # audio of the current speech not yet played

    # -- producing ------------------------------------------------------------------------------

    def new_speech(self) -> Speech:
        speech = Speech(id=next(self._ids))
        self._queue.append(speech)
        return speech

    def append(self, speech: Speech, pcm: Pcm, words: Sequence[WordTiming] = (), text: str = "") -> None:
        """Add a segment (e.g. a sentence); word times are seconds from the segment's start."""
        if speech not in self._queue:
            return  # cleared meanwhile: drop late TTS output
        offset = speech.total
        for w in words:
            start = offset + round(w.start * self.sample_rate)
            end = offset + round(w.end * self.sample_rate)
            speech.words.append(_Word(w.text, start, max(start, end)))
        speech.audio.append(pcm.astype(np.int16, copy=False))
        speech.total += len(pcm)
        if text:
            speech.text_parts.append(text)
        if speech is self._queue[0]:
            self._buffer = np.concatenate([self._buffer, speech.audio[-1]])

    def finish(self, speech: Speech) -> None:
        """No more segments for this speech."""
        speech.complete = True

    # -- consuming ------------------------------------------------------------------------------

    @property
    def current(self) -> Speech | None:
        return self._queue[0] if self._queue else None

    @property
    def playing(self) -> bool:
        """There is audio ready to play right now and the playout is not paused."""
        return not self.paused and len(self._buffer) > 0

    def next_frame(self) -> Pcm | None:
        """The next 20 ms of agent audio, or None when there is nothing to play (or paused)."""
        self._drop_finished()
        speech = self.current
        if self.paused or speech is None or len(self._buffer) == 0:
            return None
        frame = self._buffer[: self.frame]
        self._buffer = self._buffer[self.frame :]
        speech.position += len(frame)
        speech.started = True
        if len(frame) < self.frame:
            frame = np.concatenate([frame, np.zeros(self.frame - len(frame), dtype=np.int16)])
        return frame

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def clear(self) -> Speech | None:
        """Drop all queued audio; returns the speech that was playing (to read what was heard)."""
        speech = self.current
        self._queue.clear()
        self._buffer = np.zeros(0, dtype=np.int16)
        self.paused = False
        return speech

    def heard_words(self, speech: Speech | None = None) -> list[str]:
        """Words of `speech` (default: the current one) that the caller heard in full."""
        speech = speech or self.current
        if speech is None:
            return []
        heard_until = speech.position - round(self.edge_delay * self.sample_rate)
        return [w.text for w in speech.words if w.end <= heard_until]

    def heard_text(self, speech: Speech | None = None) -> str:
        speech = speech or self.current
        if speech is None:
            return ""
        if speech.finished and self.edge_delay == 0.0:
            return speech.text
        words = self.heard_words(speech)
        if not speech.words:  # no timings at all: estimate from the share of audio played
            share = speech.position / speech.total if speech.total else 0.0
            all_words = speech.text.split()
            words = all_words[: int(len(all_words) * share)]
        return " ".join(words)

    def _drop_finished(self) -> None:
        while self._queue and self._queue[0].finished:
            self._queue.pop(0)
            if self._queue:
                nxt = self._queue[0]
                self._buffer = (
                    np.concatenate(nxt.audio)[nxt.position :] if nxt.audio else np.zeros(0, dtype=np.int16)
                )
