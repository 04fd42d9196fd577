"""Caller speech from other TTS engines than espeak-ng: `python -m models.bargein.engines`.

espeak-ng's formant voices all share one synthesiser; a detector trained on them alone learns
espeak-ng as much as it learns listener cues. This renders the corpus phrases with the diphone and
statistical voices that Debian packages (`flite`: kal, rms, slt, awb; `festival`: kal and ked
diphones, the Italian lp/pc diphones, the slt HTS voice), each text at several speaking rates and, for
flite, pitch targets. The voices are split like the espeak-ng ones: training voices never speak the
held-out phrases, validation and test voices are never used for training.

Writes `corpus/engines_{split}.npz` (audio at 8 kHz, trimmed and peak-normalised like
`synth.speech`, with text, class, language and voice per render), which `make_corpus --splits
train_engines` and `scenarios --engines` draw from. Deterministic: flite and festival are
deterministic and every draw comes from `--seed`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from models.bargein.phrases import SPLITS, random_backchannel, random_interruption
from models.bargein.synth import SR, trim

OUT = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class EngineVoice:
    engine: str  # "flite" | "festival"
    name: str  # flite -voice name, or festival voice_<name> function
    lang: str
    female: bool = False

    @property
    def spec(self) -> str:
        return f"{self.engine}:{self.name}"


ENGINE_VOICES: dict[str, tuple[EngineVoice, ...]] = {
    "train": (
        EngineVoice("flite", "kal", "en"),
        EngineVoice("flite", "rms", "en"),
        EngineVoice("flite", "slt", "en", female=True),
        EngineVoice("festival", "kal_diphone", "en"),
        EngineVoice("festival", "lp_diphone", "it", female=True),
        EngineVoice("festival", "pc_diphone", "it"),
    ),
    # The slt speaker is in training through flite's statistical voice: the validation voice is a
    # held-out synthesiser of a known speaker, the test voices are held-out speakers.
    "val": (EngineVoice("festival", "cmu_us_slt_arctic_hts", "en", female=True),),
    "test": (EngineVoice("flite", "awb", "en"), EngineVoice("festival", "ked_diphone", "en")),
}


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    x = trim(np.asarray(soxr.resample(pcm, rate, SR), dtype=np.float32))
    return (x * (0.5 / (float(np.abs(x).max()) or 1.0))).astype(np.float32)


def _flite(text: str, voice: str, stretch: float, f0: float, path: Path) -> None:
    subprocess.run(
        [
            *("flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"),
            *("--setf", f"int_f0_target_mean={f0}", "-t", text, "-o", str(path)),
        ],
        check=True,
        capture_output=True,
    )


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(items: list[tuple[str, float, Path]], voice: str) -> None:
    """Render many texts with one festival process (its start-up costs far more than a phrase); if
    festival fails on one of them (the Italian diphone voices crash on some word sequences), render
    them one by one and leave out the failures (their files stay missing)."""
    try:
        _festival_batch(items, voice)
    except subprocess.CalledProcessError:
        for item in items:
            if not item[2].exists():
                try:
                    _festival_batch([item], voice)
                except subprocess.CalledProcessError:
                    print(f"festival {voice} failed on {item[0]!r}: left out", file=sys.stderr)


def _festival_batch(items: list[tuple[str, float, Path]], voice: str) -> None:
    lines = [f"(voice_{voice})"]
    for text, stretch, path in items:
        lines.append(f"(Parameter.set 'Duration_Stretch {stretch})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "{path}" \'riff)')
    # festival reads ISO-8859-1 (its Italian letter-to-sound rules expect "così" in that encoding)
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False, encoding="latin-1") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["festival", "-b", f.name], check=True, capture_output=True)
    Path(f.name).unlink()


def texts_for(split_name: str, lang: str, rng: np.random.Generator, generated: int) -> list[tuple[str, int]]:
    """(text, class): the split's phrases in `lang`, plus (training only) generated utterances."""
    split = SPLITS[split_name]
    out = [(t, 0) for t, lg in split.interruptions if lg == lang]
    out += [(t, 1) for t, lg in split.backchannels if lg == lang]
    if split_name == "train":
        seen = {t for t, _ in out}
        for cls, gen in ((0, random_interruption), (1, random_backchannel)):
            k = 0
            for _ in range(50 * generated):  # a language with few cue tokens has few combinations
                if k >= generated:
                    break
                t = gen(rng, lang)
                if t not in seen:
                    seen.add(t)
                    out.append((t, cls))
                    k += 1
    return out


def render_split(split_name: str, seed: int, generated: int, renders: int) -> Path:
    rng = np.random.default_rng(np.random.SeedSequence([seed, list(ENGINE_VOICES).index(split_name)]))
    audio: list[np.ndarray] = []
    meta: list[tuple[str, int, str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in ENGINE_VOICES[split_name]:
            n_generated = generated if voice.lang == "en" else generated // 4
            items = texts_for(split_name, voice.lang, rng, n_generated)
            jobs: list[tuple[str, int, float, float, Path]] = []
            for text, cls in items:
                for _ in range(renders):
                    stretch = round(float(rng.uniform(0.75, 1.35)), 3)
                    f0 = round(float(rng.uniform(170, 240) if voice.female else rng.uniform(85, 140)), 1)
                    jobs.append((text, cls, stretch, f0, Path(tmp) / f"{len(jobs):05d}.wav"))
            if voice.engine == "festival":
                _festival([(t, s, p) for t, _, s, _, p in jobs], voice.name)
            for text, cls, stretch, f0, path in tqdm(jobs, desc=f"{split_name} {voice.spec}"):
                if voice.engine == "flite":
                    _flite(text, voice.name, stretch, f0, path)
                if not path.exists():
                    continue
                x = _read_wav(path)
                if len(x) < SR // 20:
                    continue
                audio.append(x)
                meta.append((text, cls, voice.lang, voice.spec, stretch))
    path = OUT / f"engines_{split_name}.npz"
    save_renders(
        path,
        audio,
        text=np.array([m[0] for m in meta]),
        cls=np.array([m[1] for m in meta], dtype=np.int64),
        lang=np.array([m[2] for m in meta]),
        voice=np.array([m[3] for m in meta]),
        stretch=np.array([m[4] for m in meta], dtype=np.float32),
    )
    print(f"{split_name}: {len(audio)} renders -> {path}", file=sys.stderr)
    return path


def save_renders(path: Path, audio: list[np.ndarray], **columns: np.ndarray) -> None:
    """A render store (what `RenderStore` reads): the clips end to end, their offsets, one value per
    clip for each column (`text` and `cls` at least)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(a) for a in audio])
    np.savez(path, audio=np.concatenate(audio), offsets=offsets, **columns)


class RenderStore:
    """Pre-rendered speech of one split, drawn by class with a random speed/pitch factor."""

    def __init__(self, path: Path, default_voice: str = "") -> None:
        d = np.load(path)
        self.audio = d["audio"]
        self.offsets = d["offsets"]
        self.text = d["text"]
        self.cls = d["cls"]
        self.voice = d["voice"] if "voice" in d.files else np.full(len(self.cls), default_voice)
        self.lang = d["lang"] if "lang" in d.files else np.full(len(self.cls), "en")

    def draw(self, rng: np.random.Generator, cls: int) -> tuple[np.ndarray, dict[str, str | float]]:
        k = int(rng.choice(np.nonzero(self.cls == cls)[0]))
        x = self.audio[self.offsets[k] : self.offsets[k + 1]]
        factor = float(rng.uniform(0.9, 1.1))
        x = np.asarray(soxr.resample(x, SR * factor, SR), dtype=np.float32)
        return x, {"text": str(self.text[k]), "voice": str(self.voice[k]), "speed": round(factor, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", nargs="+", default=list(ENGINE_VOICES), choices=list(ENGINE_VOICES))
    ap.add_argument("--seed", type=int, default=5151)
    ap.add_argument("--generated", type=int, default=150, help="generated utterances per class (English)")
    ap.add_argument("--renders", type=int, default=2, help="rate/pitch draws per text (x3 for val/test)")
    args = ap.parse_args(argv)
    for split in args.splits:
        render_split(split, args.seed, args.generated, args.renders if split == "train" else 3 * args.renders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
