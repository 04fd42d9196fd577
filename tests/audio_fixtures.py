"""Real speech for tests: espeak-ng (Debian package, installed by scripts/setup.sh) to int16 arrays."""

from __future__ import annotations

import functools
import io
import subprocess
import wave

import numpy as np
import soxr


@functools.lru_cache(maxsize=256)
def _espeak_wav(text: str, voice: str, speed: int, pitch: int) -> tuple[int, bytes]:
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        return w.getframerate(), w.readframes(w.getnframes())


def espeak(
    text: str, voice: str = "en-us", speed: int = 165, pitch: int = 50, rate: int = 8000
) -> np.ndarray:
    """Speech for `text` as int16 at `rate` Hz."""
    src_rate, raw = _espeak_wav(text, voice, speed, pitch)
    pcm = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    out = soxr.resample(pcm, src_rate, rate)
    return np.clip(out * 32768.0, -32768, 32767).astype(np.int16)


def silence(seconds: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def place(length_s: float, items: list[tuple[float, np.ndarray]], rate: int = 8000) -> np.ndarray:
    """A track of `length_s` seconds with each (start_s, pcm) mixed in at its start."""
    track = np.zeros(round(length_s * rate), dtype=np.int32)
    for start, pcm in items:
        i = round(start * rate)
        end = min(len(track), i + len(pcm))
        track[i:end] += pcm[: end - i]
    return np.clip(track, -32768, 32767).astype(np.int16)
