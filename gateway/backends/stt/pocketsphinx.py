"""`pocketsphinx`: CMU PocketSphinx with the 16 kHz en-US model its wheel carries.

YAML: `stt: {provider: pocketsphinx, phrases: [...], dither: true, padding: 0.15}`. `phrases`
(optional) builds a small trigram language model from example sentences (an IVR's expected
answers), which helps a lot on telephone audio; without it the wheel's general en-US model is used.
8 kHz audio is resampled to 16 kHz. Fillers (`<s>`, `<sil>`, `[NOISE]`) are dropped and alternate
pronunciations (`to(2)`) reported as the word.
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from pydantic import Field

from gateway.audio.frames import Pcm
from gateway.backends.options import ProviderOptions
from gateway.backends.stt import pool
from gateway.backends.stt.batch import BatchEngine, BatchStt, EngineWord, PooledEngine
from gateway.config.loader import LoadedAgent
from gateway.turns.phrase_lm import write_phrase_lm

SPHINX_FRAME_SECONDS = 0.01  # PocketSphinx's default frame rate is 100 frames/s
_ALTERNATE = re.compile(r"\(\d+\)$")


class Options(ProviderOptions):
    phrases: list[str] = Field(default_factory=list)
    dither: bool = True
    padding: float = Field(default=0.15, ge=0, le=1)


class PocketSphinxEngine(BatchEngine):
    name = "pocketsphinx"
    model = "en-us"
    rate = 16000

    def __init__(self, options: Options) -> None:
        from pocketsphinx import Decoder  # heavy: C extension and model files

        kwargs: dict[str, object] = {"samprate": self.rate, "loglevel": "FATAL", "dither": options.dither}
        if options.phrases:
            self._tmp = tempfile.TemporaryDirectory(prefix="pocketsphinx-")
            kwargs["lm"] = str(write_phrase_lm(options.phrases, Path(self._tmp.name) / "phrases.arpa"))
            self.model = "en-us+phrases"
        self._decoder = Decoder(**kwargs)
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm, language: str) -> list[EngineWord]:
        with self._lock:
            d = self._decoder
            d.start_utt()
            d.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            d.end_utt()
            words: list[EngineWord] = []
            for seg in d.seg():
                word = seg.word
                if word.startswith(("<", "[")):
                    continue
                words.append(
                    EngineWord(
                        _ALTERNATE.sub("", word),
                        seg.start_frame * SPHINX_FRAME_SECONDS,
                        (seg.end_frame + 1) * SPHINX_FRAME_SECONDS,
                    )
                )
            return words


# Loading the model takes seconds: one engine per distinct configuration, shared by all calls
# (its lock serialises decodes; each call has its own BatchStt for its usage). With the decoder
# pool (pool.py, the default) the engines live in the decoder processes and here only a
# PooledEngine naming them.
_ENGINES: dict[str, BatchEngine] = {}


def build(options: Options, loaded: LoadedAgent | None) -> BatchStt:
    key = options.model_dump_json()
    if key not in _ENGINES:
        if pool.pool() is not None:
            recipe = pool.Recipe(PocketSphinxEngine, (options,), f"pocketsphinx:{key}")
            model = "en-us+phrases" if options.phrases else "en-us"
            engine = PooledEngine(recipe, PocketSphinxEngine.name, model, PocketSphinxEngine.rate)
            engine.warm()
            _ENGINES[key] = engine
        else:
            _ENGINES[key] = PocketSphinxEngine(options)
    return BatchStt(_ENGINES[key], padding=options.padding)
