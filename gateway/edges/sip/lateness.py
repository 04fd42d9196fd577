"""How late a call's session takes its frames, against the call's own media clock.

The host notes when each frame arrives; the frame's `t` (its sequence number × 20 ms) says when it
should have been taken if nothing queued anywhere. The clock's origin is the earliest arrival seen
(arrival − t, minimised), so the best-delivered frame has lateness 0 and every other frame's
lateness is what the link batching, the host's queue and its event loop added. Kept as a histogram
of whole milliseconds (2 s and beyond in the last bucket): constant memory, no allocation per frame.
"""

from __future__ import annotations

import math
import time

import numpy as np

MAX_MS = 2000


class FrameLateness:
    def __init__(self) -> None:
        self._origin = math.inf
        self._counts = np.zeros(MAX_MS + 1, dtype=np.int64)
        self.frames = 0

    def arrived(self, t: float, now: float | None = None) -> None:
        """A frame whose call time is `t` reached the host (now, by default)."""
        origin = (time.monotonic() if now is None else now) - t
        if origin < self._origin:
            self._origin = origin

    def taken(self, t: float, now: float | None = None) -> None:
        """The session took the frame whose call time is `t` (now, by default)."""
        if self._origin == math.inf:
            return
        late = (time.monotonic() if now is None else now) - self._origin - t
        self._counts[min(max(round(late * 1000.0), 0), MAX_MS)] += 1
        self.frames += 1

    def percentile(self, q: float) -> float:
        """The `q`-th percentile (0-100) of lateness in milliseconds; 0.0 without frames."""
        if not self.frames:
            return 0.0
        rank = math.ceil(q / 100.0 * self.frames)
        return float(np.searchsorted(np.cumsum(self._counts), max(rank, 1)))

    def counts(self) -> np.ndarray:
        return self._counts
