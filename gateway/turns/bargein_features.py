"""Log-mel features of the barge-in model, in numpy (shared by the runtime and the training recipe).

Theory of operation
-------------------
Audio is 8 kHz mono. Frame ``i`` is the 25 ms (200 samples) Hann-windowed segment that *ends* at sample
``(i + 1) * 80``: one frame per 10 ms hop, causal, so frame ``i`` exists as soon as ``(i + 1) * 80`` samples
have arrived. Before the first sample the signal is taken as zeros. Each frame gives ``N_MELS`` log
energies of triangular mel bands spanning the telephone band.

The same function computes the features of training clips and of live streams, so there is no
train/serve skew: the recipe in ``models/bargein`` imports this module.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from gateway.audio.melbank import mel_filterbank

SAMPLE_RATE = 8000
HOP = 80  # 10 ms
WIN = 200  # 25 ms
NFFT = 256
N_MELS = 24
FMIN = 250.0
FMAX = 3500.0
# Added to band energies before the logarithm (int16 full scale = 1.0): about -90 dBFS, so digital
# silence and the noise floor of a quiet line map to a finite, constant value.
ENERGY_FLOOR = 1e-9

FloatArray = npt.NDArray[np.float32]


def mel_matrix() -> FloatArray:
    """[NFFT // 2 + 1, N_MELS] triangular filterbank."""
    return mel_filterbank(SAMPLE_RATE, NFFT, N_MELS, FMIN, FMAX)


@functools.cache
def _window() -> FloatArray:
    return np.hanning(WIN).astype(np.float32)


def logmel(samples: npt.NDArray[np.generic], first_frame: int = 0) -> FloatArray:
    """Features of the frames that lie entirely inside ``samples``.

    ``samples`` holds the audio from sample ``first_frame * HOP - (WIN - HOP)`` on (int16 or float in
    [-1, 1]); pass ``first_frame=0`` with the stream's own beginning and the missing left context is
    zero-filled. Returns ``[n_frames, N_MELS]`` float32.
    """
    x = np.asarray(samples)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if first_frame == 0:
        x = np.concatenate([np.zeros(WIN - HOP, dtype=np.float32), x])
    n = (len(x) - (WIN - HOP)) // HOP
    if n <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx] * _window()[None, :]
    spec = np.fft.rfft(frames, n=NFFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = power @ mel_matrix()
    return np.log(mel + ENERGY_FLOOR).astype(np.float32)


def silence_frame() -> FloatArray:
    """The feature vector of digital silence (used to pad windows that start before the stream)."""
    return np.full((N_MELS,), np.log(ENERGY_FLOOR), dtype=np.float32)


# -- steps of the speech front end (80 ms) -----------------------------------------------------------------
#
# The barge-in model reads one vector per 80 ms step: the caller's speech embedding
# (`gateway.turns.speech_embedding`) and the mean log-mel energies of the caller line and of the agent
# playout over the step's 8 frames. Step k ends at sample (k + 1) * STEP, like the embedding's steps.

FRAMES_PER_STEP = 8
STEP = FRAMES_PER_STEP * HOP


def step_logmel(samples: npt.NDArray[np.generic], with_context: bool = False) -> FloatArray:
    """Mean log-mel energies per step of the steps that lie entirely inside ``samples``.

    With ``with_context``, ``samples`` starts ``WIN - HOP`` samples before the first step (the first
    frame's left context); without, it starts at a step boundary and that context is taken as silence
    (a stream's own beginning). Returns [n_steps, N_MELS].
    """
    lm = logmel(samples, first_frame=1 if with_context else 0)
    n = len(lm) // FRAMES_PER_STEP
    return lm[: n * FRAMES_PER_STEP].reshape(n, FRAMES_PER_STEP, N_MELS).mean(axis=1)
