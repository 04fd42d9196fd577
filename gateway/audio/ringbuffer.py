"""A fixed-capacity ring of samples addressed by absolute sample index.

Index ``i`` names the i-th sample ever written (0-based), not a slot in the ring, so a position taken
at one moment (e.g. "speech onset at sample 48 000") stays meaningful later: ``read(onset - rate, now)``
gives "1 s before onset up to now" as long as it has not been overwritten yet, and says so clearly if it
has.  Used for barge-in windows and VAD prefix padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["RingBuffer"]


class RingBuffer:
    """Holds the most recent ``capacity`` samples of a 1-D stream."""

    def __init__(self, capacity: int, dtype: DTypeLike = np.int16) -> None:
        if capacity <= 0:
            raise ValueError(f"RingBuffer capacity must be positive, got {capacity!r}")
        self.capacity = int(capacity)
        self.dtype = np.dtype(dtype)
        self._data: NDArray[Any] = np.zeros(self.capacity, dtype=self.dtype)
        self._total = 0

    @property
    def total_written(self) -> int:
        """Samples written since creation: the absolute index the next sample will get."""
        return self._total

    @property
    def available_from(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._total - self.capacity)

    def __len__(self) -> int:
        """Samples currently held (at most ``capacity``)."""
        return self._total - self.available_from

    def write(self, arr: NDArray[Any]) -> None:
        """Append samples; a write longer than the capacity keeps only its tail (the rest is counted)."""
        a = np.asarray(arr)
        if a.ndim != 1:
            raise ValueError(f"RingBuffer.write needs a 1-D array, got shape {a.shape}")
        if not np.can_cast(a.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"cannot write {a.dtype} samples into a {self.dtype} RingBuffer")
        n = len(a)
        if n == 0:
            return
        if n > self.capacity:
            a = a[n - self.capacity :]
        start = (self._total + n - len(a)) % self.capacity
        first = min(len(a), self.capacity - start)
        self._data[start : start + first] = a[:first]
        self._data[: len(a) - first] = a[first:]
        self._total += n

    def read(self, start: int, stop: int) -> NDArray[Any]:
        """A copy of absolute samples ``[start, stop)``.

        Raises IndexError if part of the range is already overwritten or not yet written.
        """
        if start > stop:
            raise IndexError(f"RingBuffer.read: start {start} is after stop {stop}")
        if start < self.available_from:
            raise IndexError(
                f"RingBuffer.read({start}, {stop}): samples before {self.available_from} were overwritten "
                f"(capacity {self.capacity}, {self._total} written)"
            )
        if stop > self._total:
            raise IndexError(f"RingBuffer.read({start}, {stop}): only {self._total} samples written so far")
        n = stop - start
        out = np.empty(n, dtype=self.dtype)
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        out[:first] = self._data[pos : pos + first]
        out[first:] = self._data[: n - first]
        return out

    def latest(self, n: int) -> NDArray[Any]:
        """A copy of the last ``n`` samples written (fewer if fewer are held)."""
        if n < 0:
            raise ValueError(f"RingBuffer.latest needs n >= 0, got {n}")
        return self.read(max(self.available_from, self._total - n), self._total)
