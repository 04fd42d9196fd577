"""WAV files in and out as int16 arrays (via ``soundfile``/libsndfile, plus our own G.711 writer).

Reading accepts any WAV that libsndfile can decode (16-bit PCM, μ-law, A-law, 8/24/32-bit PCM, float,
ADPCM, …) and converts it to int16; the original encoding is kept in ``WavAudio.subtype``.

Writing ``PCM_16`` (and the other linear subtypes) goes through libsndfile.  ``ULAW`` and ``ALAW`` are
written by this module with the code words of :mod:`gateway.audio.g711`: libsndfile's own G.711 encoder
rounds a few hundred of the 65536 input values to the neighbouring code word, and a recording should
carry exactly the bytes that went over RTP.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from gateway.audio.g711 import alaw_encode, ulaw_encode

__all__ = ["AudioFormatError", "WavAudio", "read_wav", "write_wav"]

_WAV_FORMATS = ("WAV", "WAVEX", "RF64")  # the RIFF/WAVE family libsndfile reads
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_MULAW = 7

StrPath = str | os.PathLike[str]


class AudioFormatError(ValueError):
    """A file is not a WAV we can read, or audio cannot be written in the requested form."""


@dataclass(frozen=True)
class WavAudio:
    rate: int
    pcm: NDArray[np.int16]  # shape (frames, channels)
    subtype: str  # libsndfile subtype of the file: "PCM_16", "ULAW", "ALAW", ...

    @property
    def channels(self) -> int:
        return int(self.pcm.shape[1])

    @property
    def frames(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate


def read_wav(path: StrPath) -> WavAudio:
    """Read a WAV file as int16 of shape (frames, channels), whatever its sample encoding."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        info = sf.info(str(p))
    except (RuntimeError, sf.SoundFileError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioFormatError(f"{p}: not a readable audio file ({_reason(exc)})") from exc
    if info.format not in _WAV_FORMATS:
        raise AudioFormatError(f"{p}: not a WAV file (libsndfile sees format {info.format})")
    try:
        if info.subtype in _FLOAT_SUBTYPES:
            raw = sf.read(str(p), dtype="float64", always_2d=True)[0]
            pcm = np.clip(np.rint(raw * 32768.0), -32768, 32767).astype(np.int16)
        else:
            pcm = sf.read(str(p), dtype="int16", always_2d=True)[0]
    except (RuntimeError, sf.SoundFileError) as exc:
        raise AudioFormatError(
            f"{p}: cannot decode {info.subtype} samples of this WAV ({_reason(exc)})"
        ) from exc
    return WavAudio(rate=int(info.samplerate), pcm=np.ascontiguousarray(pcm), subtype=str(info.subtype))


def write_wav(path: StrPath, pcm: NDArray[np.int16], rate: int, subtype: str = "PCM_16") -> None:
    """Write int16 samples, shape (frames,) for mono or (frames, channels), as a WAV file."""
    p = Path(path)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"{p}: write_wav needs int16 samples, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise AudioFormatError(
            f"{p}: samples must have shape (frames,) or (frames, channels), got {arr.shape}"
        )
    if not isinstance(rate, int | np.integer) or rate <= 0:
        raise AudioFormatError(f"{p}: sample rate must be a positive integer, got {rate!r}")
    subtype = subtype.upper()
    if subtype in ("ULAW", "ALAW"):
        codes = ulaw_encode(arr) if subtype == "ULAW" else alaw_encode(arr)
        tag = _WAVE_FORMAT_MULAW if subtype == "ULAW" else _WAVE_FORMAT_ALAW
        p.write_bytes(_g711_wav_bytes(codes, int(rate), tag))
        return
    if not sf.check_format("WAV", subtype):
        allowed = ", ".join(sorted(sf.available_subtypes("WAV")))
        raise AudioFormatError(f"{p}: cannot write WAV subtype {subtype!r}; allowed: {allowed}")
    try:
        sf.write(str(p), arr, int(rate), subtype=subtype, format="WAV")
    except (RuntimeError, sf.SoundFileError) as exc:
        raise AudioFormatError(f"{p}: cannot write {subtype} WAV ({_reason(exc)})") from exc


def _g711_wav_bytes(codes: NDArray[np.uint8], rate: int, format_tag: int) -> bytes:
    """A RIFF/WAVE file holding 8-bit G.711 code words (non-PCM: fmt with cbSize, plus a fact chunk)."""
    frames, channels = codes.shape
    data = np.ascontiguousarray(codes).tobytes()  # C order = interleaved channels
    fmt = struct.pack("<HHIIHHH", format_tag, channels, rate, rate * channels, channels, 8, 0)
    chunks = [
        b"fmt " + struct.pack("<I", len(fmt)) + fmt,
        b"fact" + struct.pack("<II", 4, frames),
        b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""),
    ]
    body = b"WAVE" + b"".join(chunks)
    if len(body) > 0xFFFFFFFF:
        raise AudioFormatError(f"G.711 WAV of {frames} frames is too large for RIFF")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _reason(exc: Any) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
