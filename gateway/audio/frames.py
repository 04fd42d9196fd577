"""Fixed 20 ms frames: the unit of audio between edges, VAD, barge-in detection and playout."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

__all__ = ["FRAME_MS", "FRAME_SECONDS", "Framer", "Pcm", "iter_frames", "samples_per_frame"]

Pcm = NDArray[np.int16]  # mono int16 samples at the rate the context says
FRAME_MS = 20
FRAME_SECONDS = FRAME_MS / 1000


def samples_per_frame(rate: int) -> int:
    """Samples in one 20 ms frame at ``rate`` Hz (160 at 8 kHz, 320 at 16 kHz)."""
    if rate <= 0 or (rate * FRAME_MS) % 1000:
        raise ValueError(f"sample rate {rate!r} Hz does not give a whole number of samples per {FRAME_MS} ms")
    return rate * FRAME_MS // 1000


def _mono_int16(pcm: NDArray[np.int16], what: str) -> NDArray[np.int16]:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"{what} needs int16 samples, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{what} needs a mono 1-D array, got shape {arr.shape}")
    return arr


class Framer:
    """Cuts a stream of arbitrary-length int16 chunks into complete 20 ms frames.

    Every frame returned is a fresh array that owns its memory, so callers may reuse their buffers.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frame_size = samples_per_frame(rate)
        self._buf = np.zeros(self.frame_size, dtype=np.int16)
        self._fill = 0  # samples of an incomplete frame held in _buf

    @property
    def buffered(self) -> int:
        """Samples held back, waiting for the rest of their frame."""
        return self._fill

    def push(self, pcm: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Add samples; returns the frames they complete (possibly none), oldest first."""
        arr = _mono_int16(pcm, "Framer.push")
        n = self.frame_size
        frames: list[NDArray[np.int16]] = []
        pos = 0
        if self._fill:
            take = min(n - self._fill, len(arr))
            self._buf[self._fill : self._fill + take] = arr[:take]
            self._fill += take
            pos = take
            if self._fill < n:
                return frames
            frames.append(self._buf.copy())
            self._fill = 0
        whole = (len(arr) - pos) // n
        if whole:
            block = arr[pos : pos + whole * n].reshape(whole, n).copy()
            frames.extend(block)  # rows of a private copy: no caller memory is shared
            pos += whole * n
        rest = len(arr) - pos
        self._buf[:rest] = arr[pos:]
        self._fill = rest
        return frames

    def flush(self, pad: bool = True) -> NDArray[np.int16] | None:
        """The held partial frame (zero-padded to a full frame if ``pad``), or None if nothing is held."""
        if not self._fill:
            return None
        out = self._buf.copy() if pad else self._buf[: self._fill].copy()
        if pad:
            out[self._fill :] = 0
        self._fill = 0
        return out


def iter_frames(signal: NDArray[np.int16], rate: int) -> Iterator[NDArray[np.int16]]:
    """Yield 20 ms frames (copies) of a whole signal, lazily; the last one is zero-padded."""
    arr = _mono_int16(signal, "iter_frames")
    n = samples_per_frame(rate)
    for start in range(0, len(arr), n):
        frame = arr[start : start + n]
        if len(frame) == n:
            yield frame.copy()
        else:
            padded = np.zeros(n, dtype=np.int16)
            padded[: len(frame)] = frame
            yield padded
