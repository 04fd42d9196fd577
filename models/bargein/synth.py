"""Sound sources of the corpus: espeak-ng speech and numpy-synthesised non-speech events.

All functions return float32 mono audio at 8 kHz in [-1, 1] and take a `numpy.random.Generator`, so
a seed fixes every sample of the corpus (espeak-ng itself is deterministic).
"""

from __future__ import annotations

import functools
import io
import subprocess
import wave
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soxr

SR = 8000
F32 = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=4096)
def _espeak_raw(text: str, voice: str, speed: int, pitch: int) -> tuple[int, bytes]:
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        return w.getframerate(), w.readframes(w.getnframes())


def trim(x: F32, rel_db: float = -40.0) -> F32:
    """Cut leading/trailing silence (10 ms frames below `rel_db` of the loudest frame)."""
    n = len(x) // 80
    if n == 0:
        return x
    e = (x[: n * 80].reshape(n, 80) ** 2).mean(axis=1) + 1e-12
    keep = np.nonzero(10 * np.log10(e / e.max()) > rel_db)[0]
    if len(keep) == 0:
        return x
    return x[keep[0] * 80 : (keep[-1] + 1) * 80]


def speech(text: str, voice: str, speed: int = 165, pitch: int = 50) -> F32:
    """espeak-ng speech at 8 kHz, trimmed to the voiced part, peak-normalised to 0.5."""
    rate, raw = _espeak_raw(text, voice, speed, pitch)
    pcm = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    out = trim(np.asarray(soxr.resample(pcm, rate, SR), dtype=np.float32))
    peak = float(np.abs(out).max()) or 1.0
    return (out * (0.5 / peak)).astype(np.float32)


def random_speech(rng: np.random.Generator, text: str, voice: str) -> F32:
    return speech(text, voice, speed=int(rng.integers(130, 230)), pitch=int(rng.integers(20, 80)))


# -- non-speech ---------------------------------------------------------------------------------------


def _env(n: int, attack: float, decay: float) -> F32:
    t = np.arange(n) / SR
    return ((1 - np.exp(-t / max(attack, 1e-4))) * np.exp(-t / max(decay, 1e-4))).astype(np.float32)


def _band(x: F32, lo: float, hi: float) -> F32:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n=len(x)).astype(np.float32)


def _norm(x: F32, peak: float = 0.5) -> F32:
    m = float(np.abs(x).max()) or 1.0
    return (x * (peak / m)).astype(np.float32)


def _glottal(rng: np.random.Generator, n: int, f0: float, jitter: float = 0.02) -> F32:
    """A crude voiced source: pulse train with jitter, low-passed."""
    out = np.zeros(n, dtype=np.float32)
    t = 0.0
    while t < n:
        out[int(t)] = 1.0
        t += SR / (f0 * (1 + jitter * rng.standard_normal()))
    return _band(np.convolve(out, np.exp(-np.arange(40) / 6.0), mode="same").astype(np.float32), 80, 3800)


def _formants(x: F32, formants: list[float], bw: float = 120.0) -> F32:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    gain = np.zeros_like(f)
    for fc in formants:
        gain += 1.0 / (1.0 + ((f - fc) / bw) ** 2)
    return np.fft.irfft(spec * gain, n=len(x)).astype(np.float32)


def cough(rng: np.random.Generator) -> F32:
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        n = int(SR * rng.uniform(0.12, 0.3))
        burst = _band(rng.standard_normal(n).astype(np.float32), 300, rng.uniform(1800, 3800))
        burst = _formants(burst, [rng.uniform(400, 900), rng.uniform(1200, 2200)], 300) + burst * 0.3
        parts.append(burst * _env(n, 0.005, rng.uniform(0.04, 0.1)))
        parts.append(np.zeros(int(SR * rng.uniform(0.05, 0.25)), dtype=np.float32))
    return _norm(np.concatenate(parts))


def throat_clear(rng: np.random.Generator) -> F32:
    n = int(SR * rng.uniform(0.3, 0.7))
    src = _glottal(rng, n, rng.uniform(70, 130), 0.15) + 0.5 * rng.standard_normal(n).astype(np.float32)
    am = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(25, 50) * np.arange(n) / SR)
    x = _formants(src * am.astype(np.float32), [rng.uniform(300, 600), rng.uniform(900, 1500)], 200)
    return _norm(x * np.hanning(n).astype(np.float32))


def door_slam(rng: np.random.Generator) -> F32:
    n = int(SR * rng.uniform(0.3, 0.8))
    t = np.arange(n) / SR
    body = sum(
        np.sin(2 * np.pi * rng.uniform(80, 400) * t + rng.uniform(0, 6)) * rng.uniform(0.3, 1)
        for _ in range(4)
    )
    x = (body + 0.6 * rng.standard_normal(n)).astype(np.float32) * _env(n, 0.002, rng.uniform(0.05, 0.2))
    return _norm(x)


def keyboard(rng: np.random.Generator) -> F32:
    n = int(SR * rng.uniform(0.5, 1.5))
    x = np.zeros(n, dtype=np.float32)
    t = int(rng.integers(0, 400))
    while t < n - 200:
        m = int(rng.integers(60, 160))
        click = _band(rng.standard_normal(m).astype(np.float32), 1000, 3800) * _env(m, 0.0005, 0.004)
        x[t : t + m] += click * rng.uniform(0.4, 1.0)
        t += int(SR * rng.uniform(0.06, 0.25))
    return _norm(x)


def breathing(rng: np.random.Generator) -> F32:
    n = int(SR * rng.uniform(0.5, 1.2))
    x = _band(rng.standard_normal(n).astype(np.float32), 300, rng.uniform(1500, 3000))
    x = _formants(x, [rng.uniform(500, 1500)], 800) + 0.2 * x
    return _norm(x * np.hanning(n).astype(np.float32), 0.3)


def laughter(rng: np.random.Generator) -> F32:
    parts = []
    f0 = rng.uniform(150, 320)
    vowel = [rng.uniform(600, 900), rng.uniform(1100, 1700), rng.uniform(2300, 2900)]
    for _ in range(int(rng.integers(2, 6))):
        n = int(SR * rng.uniform(0.08, 0.16))
        src = _glottal(rng, n, f0 * rng.uniform(0.9, 1.1), 0.05) + 0.4 * rng.standard_normal(n).astype(
            np.float32
        )
        parts.append(_formants(src, vowel, 150) * np.hanning(n).astype(np.float32))
        parts.append(
            0.15 * _band(rng.standard_normal(int(SR * rng.uniform(0.04, 0.1))).astype(np.float32), 500, 3000)
        )
    return _norm(np.concatenate(parts))


def beep(rng: np.random.Generator) -> F32:
    n = int(SR * rng.uniform(0.1, 0.5))
    t = np.arange(n) / SR
    if rng.random() < 0.5:  # DTMF pair
        x = np.sin(2 * np.pi * rng.choice([697, 770, 852, 941]) * t) + np.sin(
            2 * np.pi * rng.choice([1209, 1336, 1477]) * t
        )
    else:
        x = np.sin(2 * np.pi * rng.uniform(400, 2000) * t)
    ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.005)
    return _norm((x * ramp).astype(np.float32), 0.4)


def babble(rng: np.random.Generator, talkers: list[F32]) -> F32:
    """Distant TV / other people: several speech tracks, muffled and reverberant."""
    n = int(SR * rng.uniform(0.8, 2.0))
    x = np.zeros(n, dtype=np.float32)
    for s in talkers:
        seg = np.resize(s, n) if len(s) < n else s[:n]
        x += np.roll(seg, int(rng.integers(0, n))) * rng.uniform(0.5, 1.0)
    ir = (rng.standard_normal(int(SR * 0.15)) * np.exp(-np.arange(int(SR * 0.15)) / (SR * 0.04))).astype(
        np.float32
    )
    x = np.convolve(x, ir, mode="full")[:n].astype(np.float32)
    x = _band(x, 200, rng.uniform(1500, 2800))
    return _norm(x * np.hanning(n).astype(np.float32) ** 0.3)


NOISES: dict[str, Callable[[np.random.Generator], F32]] = {
    "cough": cough,
    "throat_clear": throat_clear,
    "door_slam": door_slam,
    "keyboard": keyboard,
    "breathing": breathing,
    "laughter": laughter,
    "beep": beep,
}


def background(rng: np.random.Generator, n: int, kind: str) -> F32:
    """Stationary line/room noise, unit RMS."""
    w = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        x = w
    else:
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1 / SR)
        f[0] = f[1]
        spec = spec / (np.sqrt(f) if kind == "pink" else f)
        x = np.fft.irfft(spec, n=n).astype(np.float32)
        if kind == "hum":
            t = np.arange(n) / SR
            base = rng.choice([50.0, 60.0])
            x = 0.1 * x / (np.std(x) + 1e-9) + sum(
                np.sin(2 * np.pi * base * k * t) / k for k in range(1, 9)
            ).astype(np.float32)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)
