"""`espeak-ng`: formant synthesis, light and instant; word timings from the engine's word events.

YAML: `tts: {provider: espeak-ng, voice: en-us, rate: 165, pitch: 50, engine: auto}`.
`engine: library` uses libespeak-ng through ctypes (the PyPI package `espeakng-loader` carries the
library and its data): audio plus a word event (text position, audio position) per word.
`engine: binary` runs the Debian `espeak-ng` program (no word events: timings are spread over the
voiced audio by word length). `auto` prefers the library.
"""

from __future__ import annotations

import ctypes
import io
import shutil
import subprocess
import threading
import wave
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from gateway.audio.frames import Pcm
from gateway.backends.base import BackendError, WordTiming
from gateway.backends.options import ProviderOptions, config_error
from gateway.backends.tts.common import (
    Sentence,
    SentenceStreamer,
    text_words,
    voiced_span,
    words_by_characters,
)
from gateway.config.loader import LoadedAgent


class Options(ProviderOptions):
    voice: str = Field(default="en-us", min_length=1)
    rate: int = Field(default=165, ge=80, le=450)  # words per minute
    pitch: int = Field(default=50, ge=0, le=99)
    engine: Literal["auto", "library", "binary"] = "auto"


def _library_paths() -> tuple[str, str] | None:
    try:
        import espeakng_loader
    except ImportError:
        return None
    lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    return (lib, data) if Path(lib).is_file() and Path(data).is_dir() else None


def check(options: Options, loaded: LoadedAgent | None) -> None:
    lib = _library_paths() is not None
    binary = shutil.which("espeak-ng") is not None
    if (options.engine == "library" and not lib) or (options.engine == "binary" and not binary):
        raise config_error(loaded, ("tts", "engine"), f"espeak-ng {options.engine} not installed")
    if not (lib or binary):
        raise config_error(
            loaded,
            ("tts", "provider"),
            "espeak-ng needs the PyPI package espeakng-loader or the Debian package espeak-ng",
        )


# -- libespeak-ng through ctypes -----------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RATE, _PITCH = 1, 3


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

# libespeak-ng keeps global state: one library, one lock, one voice at a time.
_LIB_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_LIB_RATE = 0


class _Collector:
    def __init__(self) -> None:
        self.samples: list[bytes] = []
        self.words: list[tuple[int, int, int]] = []  # (text position, length, audio ms)

    def __call__(self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: ctypes._Pointer[_Event]) -> int:
        if n > 0 and wav:
            self.samples.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self.words.append((e.text_position, e.length, e.audio_position))
            i += 1
        return 0


def _load_library(lib_path: str, data_path: str) -> tuple[ctypes.CDLL, int]:
    global _LIB, _LIB_RATE
    if _LIB is None:
        lib = ctypes.CDLL(lib_path)
        lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
        lib.espeak_SetSynthCallback.argtypes = (_CALLBACK,)
        lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        lib.espeak_Synth.argtypes = (
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        )
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 200, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise BackendError(f"espeak-ng: could not initialise with data at {data_path}")
        _LIB, _LIB_RATE = lib, rate
    return _LIB, _LIB_RATE


class LibraryEngine:
    def __init__(self, options: Options, lib_path: str, data_path: str) -> None:
        with _LIB_LOCK:
            self._lib, self.rate = _load_library(lib_path, data_path)
        self._options = options

    def __call__(self, text: str) -> Sentence:
        collector = _Collector()
        callback = _CALLBACK(collector)
        data = text.encode()
        with _LIB_LOCK:
            lib = self._lib
            lib.espeak_SetSynthCallback(callback)
            if lib.espeak_SetVoiceByName(self._options.voice.encode()) != 0:
                raise BackendError(f"espeak-ng: unknown voice {self._options.voice!r}")
            lib.espeak_SetParameter(_RATE, self._options.rate, 0)
            lib.espeak_SetParameter(_PITCH, self._options.pitch, 0)
            err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise BackendError(f"espeak-ng: synthesis error {err}")
        pcm = np.frombuffer(b"".join(collector.samples), dtype=np.int16).copy()
        return Sentence(pcm, self.rate, _event_words(text, collector.words, pcm, self.rate))


def _event_words(text: str, events: list[tuple[int, int, int]], pcm: Pcm, rate: int) -> list[WordTiming]:
    """Word timings from espeak's word events: each word ends where the next starts (or the voice ends)."""
    words = text_words(text)
    if len(events) != len(words):
        return words_by_characters(words, *voiced_span(pcm, rate))
    _, voice_end = voiced_span(pcm, rate)
    starts = [ms / 1000.0 for _, _, ms in events]
    out: list[WordTiming] = []
    for i, word in enumerate(words):
        end = starts[i + 1] if i + 1 < len(starts) else max(voice_end, starts[i])
        out.append(WordTiming(word, starts[i], max(end, starts[i])))
    return out


class BinaryEngine:
    """The Debian `espeak-ng` program: audio only, timings estimated from word lengths."""

    def __init__(self, options: Options) -> None:
        self._options = options
        self.rate = 22050

    def __call__(self, text: str) -> Sentence:
        o = self._options
        try:
            out = subprocess.run(
                ["espeak-ng", "-v", o.voice, "-s", str(o.rate), "-p", str(o.pitch), "--stdout", text],
                check=True,
                capture_output=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"espeak-ng: {exc}") from exc
        with wave.open(io.BytesIO(out)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
        return Sentence(pcm, rate, words_by_characters(text_words(text), *voiced_span(pcm, rate)))


def build(options: Options, loaded: LoadedAgent | None) -> SentenceStreamer:
    paths = _library_paths()
    engine: LibraryEngine | BinaryEngine
    if options.engine != "binary" and paths is not None:
        engine = LibraryEngine(options, *paths)
    else:
        engine = BinaryEngine(options)
    return SentenceStreamer("espeak-ng", options.voice, engine)
