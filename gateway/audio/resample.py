"""Sample-rate conversion of int16 PCM with libsoxr (via the ``soxr`` package).

libsoxr does the filtering in C; we feed it float32 and round and clip back to int16 ourselves.  (With
int16 I/O libsoxr adds TPDF dither, which turns digital silence into ±1 noise: the replay contract relies
on silence staying exactly zero, and dither would also make streaming and one-shot output differ.)

The streaming resampler is delay-compensated: the concatenation of all ``process`` outputs plus ``flush``
equals the one-shot ``resample`` of the whole signal.  The price is latency: libsoxr works in blocks and
holds back output until it has enough input (at "HQ", 8 -> 16 kHz fed 20 ms chunks, some 30-60 ms); the
``pending`` property tells how many output samples are currently held.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr
from numpy.typing import NDArray

__all__ = ["Quality", "StreamResampler", "resample"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]

_SCALE = 32768.0


def _to_float(pcm: NDArray[np.int16], what: str) -> NDArray[np.float32]:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"{what} needs int16 samples, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{what} needs a mono 1-D array, got shape {arr.shape}")
    return arr.astype(np.float32) / np.float32(_SCALE)


def _to_int16(x: NDArray[np.float32]) -> NDArray[np.int16]:
    return np.clip(np.rint(x * np.float32(_SCALE)), -32768, 32767).astype(np.int16)


def _check_rates(from_rate: int, to_rate: int) -> None:
    for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if not isinstance(rate, int | np.integer) or rate <= 0:
            raise ValueError(f"{name} must be a positive integer sample rate, got {rate!r}")


def resample(
    pcm: NDArray[np.int16], from_rate: int, to_rate: int, quality: Quality = "HQ"
) -> NDArray[np.int16]:
    """Resample a whole mono int16 signal; the result has ``ceil(len * to_rate / from_rate)`` samples."""
    _check_rates(from_rate, to_rate)
    x = _to_float(pcm, "resample")
    if from_rate == to_rate:
        return np.array(pcm, dtype=np.int16, copy=True)
    if len(x) == 0:
        return np.zeros(0, dtype=np.int16)
    return _to_int16(soxr.resample(x, from_rate, to_rate, quality=quality))


class StreamResampler:
    """Resample a mono int16 stream chunk by chunk (per call, per direction: it holds filter state)."""

    def __init__(self, from_rate: int, to_rate: int, quality: Quality = "HQ") -> None:
        _check_rates(from_rate, to_rate)
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.quality: Quality = quality
        self._stream: soxr.ResampleStream | None = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, "float32", quality)
        )
        self._flushed = False

    @property
    def pending(self) -> int:
        """Output samples held inside the resampler (its current latency, in output samples)."""
        return 0 if self._stream is None else round(self._stream.delay())

    def process(self, chunk: NDArray[np.int16]) -> NDArray[np.int16]:
        """Feed a chunk of any length; returns whatever output is ready (possibly empty)."""
        if self._flushed:
            raise RuntimeError("StreamResampler.process() after flush(); call reset() to start a new stream")
        x = _to_float(chunk, "StreamResampler.process")
        if self._stream is None:
            return np.array(chunk, dtype=np.int16, copy=True)
        if len(x) == 0:
            return np.zeros(0, dtype=np.int16)
        return _to_int16(self._stream.resample_chunk(x))

    def flush(self) -> NDArray[np.int16]:
        """End of stream: returns the held-back tail. Further ``process`` calls need ``reset()`` first."""
        if self._flushed:
            return np.zeros(0, dtype=np.int16)
        self._flushed = True
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return _to_int16(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))

    def reset(self) -> None:
        """Forget all state, ready for a new stream with the same rates."""
        if self._stream is not None:
            self._stream.clear()
        self._flushed = False
