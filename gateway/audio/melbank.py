"""Triangular mel filterbank (HTK mel scale), shared by the barge-in and end-of-turn features."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt


def hz_to_mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.cache
def mel_filterbank(
    sample_rate: int, nfft: int, n_mels: int, fmin: float, fmax: float
) -> npt.NDArray[np.float32]:
    """``[nfft // 2 + 1, n_mels]`` triangular filters between ``fmin`` and ``fmax`` (read-only)."""
    n_bins = nfft // 2 + 1
    freqs = np.linspace(0.0, sample_rate / 2, n_bins)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    fb = np.zeros((n_bins, n_mels), dtype=np.float64)
    for j in range(n_mels):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[:, j] = np.clip(np.minimum(up, down), 0.0, None)
    out = fb.astype(np.float32)
    out.setflags(write=False)
    return out
