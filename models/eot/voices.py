"""Caller voices of the end-of-turn corpus across TTS engines (a thin layer over `models.voices.tts`).

Training and validation draw from the training engines only (espeak-ng, pico, piper; rhvoice has no
voices here); the benchmark's test voices are the held-out engines flite and festival (never used for
training, calibration or epoch selection) and espeak-ng's held-out test variants (the first model's
benchmark). Each split keeps the engine's own train / val / test voices of `models.voices.tts`; for
espeak-ng the end-of-turn recipe's split (`models.eot.phrases.VOICES`: English bases, accent voices in
training) is used, since the turns are English.

A turn is spoken by one voice with a per-turn rate and pitch factor (slightly varied per part).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.eot.phrases import VOICES as ESPEAK_SPLITS
from models.voices import tts

# Share of each training engine in the train / val splits (piper has one voice: kept small).
ENGINE_WEIGHTS: dict[str, float] = {"espeak-ng": 0.45, "pico": 0.35, "piper": 0.20}
TEST_ENGINES = ("flite", "festival")


@dataclass(frozen=True)
class VoiceDraw:
    voice: tts.Voice
    rate: float
    pitch: float
    meta: dict[str, str] = field(default_factory=dict)


def engine_voices(engine: str, split: str) -> list[tts.Voice]:
    """English-reading voices of `engine` for `split` (train | val | test)."""
    if split in ("train", "extra", "val"):
        assert engine not in TEST_ENGINES, f"{engine} is a held-out test engine"
    key = "train" if split == "extra" else split
    if engine == "espeak-ng":
        raise ValueError("espeak-ng voices are drawn from models.eot.phrases.VOICES")
    vs = list(tts.VOICES[engine][key])
    # festival's Italian diphone voices read English badly (and crash on some words): English only.
    return [v for v in vs if engine != "festival" or v.lang == "en"]


def draw_voice(rng: np.random.Generator, split: str, engine: str | None = None) -> VoiceDraw:
    """A voice of `split` (engine drawn by `ENGINE_WEIGHTS` unless given) with a rate and pitch."""
    if engine is None:
        names = list(ENGINE_WEIGHTS)
        w = np.array([ENGINE_WEIGHTS[n] for n in names])
        engine = names[int(rng.choice(len(names), p=w / w.sum()))]
    if engine == "espeak-ng":
        name = ESPEAK_SPLITS[split].draw(rng)
        voice = tts.Voice("espeak-ng", name, "en", name.split("+")[-1].startswith("f"))
    else:
        vs = engine_voices(engine, split)
        voice = vs[int(rng.integers(len(vs)))]
    rate = float(rng.uniform(0.8, 1.25))
    # festival ignores pitch; flite sets its mean F0 from it
    pitch = float(rng.uniform(0.85, 1.18))
    return VoiceDraw(voice, rate, pitch)
