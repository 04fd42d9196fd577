"""Thread-safe audio buffers between pjsua2's media threads and everything else.

Both sides of a media callback must stay cheap and never block: a callback that waits delays the
whole conference bridge. So inbound frames go into a bounded deque that drops its oldest frame when
full (and counts the drop), and outbound audio comes out of a playout buffer that hands back exactly
one frame (or silence) per request.
"""

from __future__ import annotations

import threading
from collections import deque


class DropOldestQueue:
    """Bounded FIFO of byte strings; `put` never blocks, it discards the oldest item when full."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._items: deque[bytes] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0
        self.total = 0

    def put(self, item: bytes) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self.total += 1

    def drain(self) -> list[bytes]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)


class PlayoutBuffer:
    """Agent audio waiting to be played, cut into fixed-size frames on request.

    `pause` holds the position (the next frame after `resume` is the one that would have played),
    `clear` drops everything queued at once, so no stale audio follows an interruption. `played_bytes`
    counts the audio actually handed to the call, which gives the exact played position.
    """

    def __init__(self, frame_bytes: int, max_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self.max_bytes = max_bytes
        self._silence = bytes(frame_bytes)
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._head = 0  # offset into _chunks[0]
        self._lock = threading.Lock()
        self.paused = False
        self.played_bytes = 0
        self.dropped_bytes = 0
        self.generation = 0  # bumped by clear(): lets the producer tell old audio from new

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def write(self, pcm: bytes) -> None:
        if not pcm:
            return
        with self._lock:
            room = self.max_bytes - self._queued
            if len(pcm) > room:
                self.dropped_bytes += len(pcm) - max(room, 0)
                pcm = pcm[: max(room, 0)]
                if not pcm:
                    return
            self._chunks.append(pcm)
            self._queued += len(pcm)

    def clear(self) -> int:
        """Drop all queued audio; returns how many bytes were dropped."""
        with self._lock:
            dropped = self._queued
            self._chunks.clear()
            self._queued = 0
            self._head = 0
            self.generation += 1
        return dropped

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def next_frame(self) -> tuple[bytes, bool]:
        """One frame of audio, and whether it carries agent audio (False: silence)."""
        if self.paused or self._queued == 0:
            return self._silence, False
        with self._lock:
            need = self.frame_bytes
            parts: list[bytes] = []
            while need and self._chunks:
                chunk = self._chunks[0]
                take = min(need, len(chunk) - self._head)
                parts.append(chunk[self._head : self._head + take])
                self._head += take
                need -= take
                if self._head == len(chunk):
                    self._chunks.popleft()
                    self._head = 0
            got = self.frame_bytes - need
            self._queued -= got
            self.played_bytes += got
        if need:
            parts.append(bytes(need))
        return b"".join(parts), True
