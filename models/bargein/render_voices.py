"""Caller speech in many engines' voices: `PYTHONPATH=. .venv/bin/python -m models.bargein.render_voices`.

Writes four render stores (see `models/voices/store.py`) under `models/bargein/corpus/`:

- `voices_train.npz`: *training* phrases (the fixed lists plus generated utterances, see `phrases.py`)
  in the training voices of the training engines other than espeak-ng (which `make_corpus` renders
  itself): Pico (en-US at three pitch settings, de/es/fr/it) and Piper (en_US-joe-medium), each text at
  random rates/pitches; interruptions and backchannels balanced per voice.
- `voices_val.npz`: held-out phrases (split "val") in the validation voices of the training engines
  (Pico en-GB, a vocal-tract-shifted Piper joe, held-out espeak-ng voices): model selection.
- `voices_test.npz`: held-out phrases (split "test") in every flite and festival voice.
- `voices_test_trainphrases.npz`: training phrases in every flite and festival voice, so the held-out
  engines can be scored on seen and on unseen phrases apart.

flite and festival are test engines: they never speak into a training or validation store (asserted).
Deterministic: every draw of voice *k* of a store comes from `SeedSequence([seed, store, k])`, and all
engines are deterministic. One process (Piper's ONNX session may use two threads).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.bargein.phrases import _HELDOUT_TEXTS, SPLITS, random_backchannel, random_interruption
from models.voices import tts
from models.voices.store import save_renders

OUT = Path(__file__).parent / "corpus"

# store -> (phrase split, voice split, engines, generated utterances per class, renders per text)
STORES: dict[str, tuple[str, str, tuple[str, ...], int, int]] = {
    "train": ("train", "train", ("pico", "piper", "rhvoice"), 100, 2),
    "val": ("val", "val", ("pico", "piper", "espeak-ng"), 0, 4),
    "test": ("test", "test", tts.TEST_ENGINES, 0, 6),
    "test_trainphrases": ("train", "test", tts.TEST_ENGINES, 30, 2),
}
# per-voice overrides of (generated, renders): the one Piper voice gets more of both. Non-English
# voices get a quarter of the generated utterances.
OVERRIDES: dict[tuple[str, str], tuple[int, int]] = {
    ("train", "piper"): (150, 4),
    ("val", "piper"): (0, 6),
    ("val", "espeak-ng"): (0, 2),
}
RATE = (0.8, 1.3)  # speaking-rate factor per render
PITCH = (0.88, 1.12)  # pitch factor per render (times the voice's own; festival ignores it)


def texts(phrase_split: str, lang: str, rng: np.random.Generator, generated: int) -> list[tuple[str, int]]:
    """(text, class): the split's phrases in `lang`, then (`generated` > 0, training phrases only)
    generated utterances, topping up the smaller class so both classes have as many texts (or, where
    the generator runs out of backchannels, dropping generated interruptions)."""
    split = SPLITS[phrase_split]
    ints = [t for t, lg in split.interruptions if lg == lang]
    bcs = [t for t, lg in split.backchannels if lg == lang]
    out = [(t, 0) for t in ints] + [(t, 1) for t in bcs]
    if generated > 0:
        assert phrase_split == "train"
        fixed = {t for t, _ in out}
        seen = set(fixed)
        want = {0: generated + max(0, len(bcs) - len(ints)), 1: generated + max(0, len(ints) - len(bcs))}
        for cls, gen in ((0, random_interruption), (1, random_backchannel)):
            k = 0
            for _ in range(50 * want[cls]):  # a language with few cue tokens has few combinations
                if k >= want[cls]:
                    break
                t = gen(rng, lang)
                if t not in seen:
                    seen.add(t)
                    out.append((t, cls))
                    k += 1
        # a language with few cue tokens runs out of backchannel combinations: drop the surplus of
        # generated texts of the other class (the last ones drawn)
        n = Counter(c for _, c in out)
        surplus = {c: max(0, n[c] - n[1 - c]) for c in (0, 1)}
        for i in range(len(out) - 1, -1, -1):
            c = out[i][1]
            if surplus[c] > 0 and out[i][0] not in fixed:
                del out[i]
                surplus[c] -= 1
    return out


def render_store(name: str, seed: int, scale: float) -> Path | None:
    phrase_split, voice_split, engines, generated, renders = STORES[name]
    store_id = list(STORES).index(name)
    audio: list[np.ndarray] = []
    cols: dict[str, list[object]] = {
        k: [] for k in ("text", "cls", "lang", "voice", "engine", "rate", "pitch")
    }
    for k, voice in enumerate(tts.voices(voice_split, engines)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, store_id, k]))
        gen, reps = OVERRIDES.get((name, voice.engine), (generated, renders))
        gen = gen if voice.lang == "en" else gen // 4  # English mostly
        items = texts(phrase_split, voice.lang, rng, gen)
        jobs: list[tuple[str, int, dict[str, float]]] = []
        for text, cls in items:
            for _ in range(reps):
                params = {
                    "rate": round(float(rng.uniform(*RATE)), 3),
                    "pitch": round(float(rng.uniform(*PITCH)), 3),
                }
                jobs.append((text, cls, params))
        if scale < 1.0 and jobs:
            keep = rng.choice(len(jobs), size=max(2, round(len(jobs) * scale)), replace=False)
            jobs = [jobs[i] for i in sorted(keep)]
        if not jobs:
            continue
        try:
            xs: list[np.ndarray] = []
            for i in tqdm(range(0, len(jobs), 100), desc=f"{name} {voice.spec}", unit="x100"):
                xs += tts.render(voice, [(t, p) for t, _, p in jobs[i : i + 100]])
        except RuntimeError as e:
            print(f"{voice.spec}: {e}", file=sys.stderr)
            continue
        for (text, cls, p), x in zip(jobs, xs, strict=True):
            if len(x) < tts.SR // 20:
                continue
            audio.append(x)
            values = (text, cls, voice.lang, voice.spec, voice.engine, p["rate"], p["pitch"])
            for col, v in zip(cols, values, strict=True):
                cols[col].append(v)
    if not audio:
        print(f"{name}: nothing rendered", file=sys.stderr)
        return None
    if voice_split in ("train", "val"):
        assert not set(cols["engine"]) & set(tts.TEST_ENGINES), "test engines in a training/val store"
    if phrase_split == "train":
        leaked = {str(t).lower() for t in cols["text"]} & _HELDOUT_TEXTS
        assert not leaked, f"held-out phrases in {name}: {leaked}"
    path = OUT / f"voices_{name}.npz"
    save_renders(
        path,
        audio,
        text=np.array(cols["text"]),
        cls=np.array(cols["cls"], dtype=np.int64),
        lang=np.array(cols["lang"]),
        voice=np.array(cols["voice"]),
        engine=np.array(cols["engine"]),
        rate=np.array(cols["rate"], dtype=np.float32),
        pitch=np.array(cols["pitch"], dtype=np.float32),
    )
    seconds = sum(len(a) for a in audio) / tts.SR
    print(f"{name}: {len(audio)} renders, {seconds / 60:.1f} min of speech -> {path}", file=sys.stderr)
    for (voice_spec, cls), n in sorted(Counter(zip(cols["voice"], cols["cls"], strict=True)).items()):
        print(f"  {voice_spec:40s} cls={cls} {n}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", nargs="+", default=list(STORES), choices=list(STORES))
    ap.add_argument("--seed", type=int, default=7070)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the renders (smoke runs: 0.05)")
    args = ap.parse_args(argv)
    for name in args.stores:
        t0 = time.monotonic()
        render_store(name, args.seed, args.scale)
        print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
