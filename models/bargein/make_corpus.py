"""Build the barge-in training/validation corpus: `python -m models.bargein.make_corpus`.

Each clip is one overlap as the detector sees it: 3.6 s of caller line audio and agent playout, with the
caller's sound starting at a true onset 1.25-1.7 s into the clip (the speech front end needs 0.78 s of audio
before the first step the model reads, which starts up to 0.24 s before a VAD onset that comes early or
late). Classes: 0 interruption, 1 backchannel, 2 noise, 3 echo only (the caller is silent; the line carries
the agent's echo and background noise).

Caller speech comes from several engines and from real people: espeak-ng (rendered here), and the render
stores of `render_voices.py` / `models/voices/real.py` (SVOX Pico, Piper, RHVoice, real recorded speakers),
drawn with the shares in `SOURCES`. flite and festival never appear here: they are the held-out test engines.

Output (git-ignored): `models/bargein/corpus/{split}_audio.npz` with both channels as int16 [N, 28800], class,
onset and end (seconds), and `{split}.jsonl` with every clip's recipe. `models/bargein/features.py` turns
the audio into the model's step features with the runtime's own code. Clip `i` of a split is generated from
`SeedSequence([seed, split_id, i])` alone, so the corpus is the same whatever the worker count.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from models.bargein import synth
from models.bargein.channel import active_rms, simulate
from models.bargein.engines import RenderStore
from models.bargein.phrases import SPLITS, Split, random_backchannel, random_interruption

SR = 8000
CLIP_S = 3.6
ONSET_RANGE = (1.25, 1.7)
CLASSES = ("interruption", "backchannel", "noise", "echo")
OUT = Path(__file__).parent / "corpus"
# Share of training interruptions/backchannels that are generated utterances (see phrases.py).
GENERATED_SHARE = 0.5
SPLIT_IDS = {"train": 0, "val": 1}
DEFAULT_COUNTS = {
    "train": {"interruption": 5000, "backchannel": 5000, "noise": 2400, "echo": 1200},
    "val": {"interruption": 300, "backchannel": 300, "noise": 160, "echo": 80},
}
# Where a speech clip's caller voice comes from, per split: (store name or "espeak-ng", share). A store that
# was not rendered, or holds fewer than MIN_STORE_CLIPS clips of the class, is left out and the shares
# renormalised (a smoke run works with espeak-ng alone; the real recordings hold almost no backchannels, so
# they only ever speak interruptions).
SOURCES = {
    "train": (("espeak-ng", 0.35), ("voices_train", 0.5), ("real_train", 0.15)),
    "val": (("espeak-ng", 0.4), ("voices_val", 0.6)),
}
MIN_STORE_CLIPS = 50


@functools.lru_cache(maxsize=8)
def render_store(name: str) -> RenderStore | None:
    """A pre-rendered speech store of `corpus/` (see `render_voices.py`), or None if it was not rendered."""
    path = OUT / f"{name}.npz"
    return RenderStore(path) if path.exists() else None


def _has_class(name: str, cls: int) -> bool:
    store = render_store(name)
    return store is not None and int(np.sum(store.cls == cls)) >= MIN_STORE_CLIPS


def pick_source(rng: np.random.Generator, split_name: str, cls: int) -> str:
    avail = [(n, w) for n, w in SOURCES[split_name] if n == "espeak-ng" or _has_class(n, cls)]
    weights = np.array([w for _, w in avail])
    return avail[int(rng.choice(len(avail), p=weights / weights.sum()))][0]


@dataclass(frozen=True)
class Clip:
    caller: np.ndarray  # int16 line
    agent: np.ndarray  # int16 playout reference
    cls: int
    onset: float
    end: float
    meta: dict[str, Any]


def pick_voice(rng: np.random.Generator, split: Split, lang: str) -> str:
    return split.voice(lang, int(rng.integers(0, 100)), int(rng.integers(0, 100)))


def agent_track(rng: np.random.Generator, split: Split, n: int, speaking_at: float) -> tuple[np.ndarray, str]:
    """Agent playout of `n` samples that is speaking at `speaking_at` seconds (unless it just ended)."""
    voice = str(rng.choice(split.agent_voices))
    lines = [synth.random_speech(rng, str(rng.choice(split.agent_lines)), voice) for _ in range(2)]
    gap = np.zeros(int(SR * rng.uniform(0.05, 0.3)), dtype=np.float32)
    agent = np.concatenate([lines[0], gap, lines[1]])
    start = speaking_at - rng.uniform(0.15, 2.5)
    out = np.zeros(n, dtype=np.float32)
    s = int(start * SR)
    src = agent[max(0, -s) :]
    lo = max(0, s)
    m = min(n - lo, len(src))
    out[lo : lo + m] = src[:m]
    return out * rng.uniform(0.5, 1.0), voice


def caller_event(rng: np.random.Generator, split: Split, cls: int) -> tuple[np.ndarray, dict[str, Any]]:
    source = pick_source(rng, split.name, cls) if cls in (0, 1) else "espeak-ng"
    store = render_store(source) if source != "espeak-ng" else None
    if cls in (0, 1) and store is not None:
        x, meta = store.draw(rng, cls)
        return x, dict(meta)
    if cls in (0, 1):
        phrases = split.interruptions if cls == 0 else split.backchannels
        text, lang = phrases[int(rng.integers(0, len(phrases)))]
        if split.name == "train" and rng.random() < GENERATED_SHARE:
            text = random_interruption(rng, lang) if cls == 0 else random_backchannel(rng, lang)
        voice = pick_voice(rng, split, lang)
        return synth.random_speech(rng, text, voice), {"text": text, "voice": voice}
    if cls == 2:
        kind = str(rng.choice([*synth.NOISES, "babble"]))
        if kind == "babble":
            talkers = []
            for _ in range(int(rng.integers(1, 4))):
                text, lang = split.interruptions[int(rng.integers(0, len(split.interruptions)))]
                talkers.append(synth.random_speech(rng, text, pick_voice(rng, split, lang)))
            return synth.babble(rng, talkers), {"noise": kind}
        return synth.NOISES[kind](rng), {"noise": kind}
    return np.zeros(0, dtype=np.float32), {}


def make_clip(split_name: str, index: int, cls: int, seed: int) -> Clip:
    split = SPLITS[split_name]
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split_name], index]))
    n = int(CLIP_S * SR)
    onset = float(rng.uniform(*ONSET_RANGE))
    agent, agent_voice = agent_track(rng, split, n, onset)
    event, meta = caller_event(rng, split, cls)
    caller = np.zeros(n, dtype=np.float32)
    i = int(onset * SR)
    m = min(n - i, len(event))
    caller[i : i + m] = event[:m]
    end = onset + m / SR
    # Non-speech events are set relative to a speech level: quieter or louder than speech would be.
    ref = None
    if cls == 2:
        ref = active_rms(event) * 10 ** (-rng.uniform(-6, 12) / 20) if len(event) else 0.1
    elif cls == 3:
        ref, end = 0.1, onset
    line, playout, params = simulate(caller, agent, rng, speech_level_ref=ref)
    meta.update(
        {
            "split": split_name,
            "index": index,
            "class": CLASSES[cls],
            "onset": round(onset, 4),
            "end": round(end, 4),
            "agent_voice": agent_voice,
            "channel": params.to_dict(),
        }
    )
    return Clip(line, playout, cls, onset, end, meta)


def _job(args: tuple[str, int, int, int]) -> tuple[np.ndarray, np.ndarray, int, float, float, dict[str, Any]]:
    clip = make_clip(*args)
    return clip.caller, clip.agent, clip.cls, clip.onset, clip.end, clip.meta


def build(split: str, counts: dict[str, int], seed: int, workers: int, wav_examples: int) -> Path:
    jobs: list[tuple[str, int, int, int]] = []
    for cls, name in enumerate(CLASSES):
        jobs += [(split, len(jobs) + k, cls, seed) for k in range(counts[name])]
    # Renumber so each clip's index is its position (the seed depends only on split, index and class).
    jobs = [(s, i, c, sd) for i, (s, _, c, sd) in enumerate(jobs)]
    OUT.mkdir(parents=True, exist_ok=True)
    for i in range(min(wav_examples, len(jobs))):
        j = jobs[(i * 997) % len(jobs)]
        clip = make_clip(*j)
        path = OUT / f"example_{split}_{j[1]:05d}_{CLASSES[clip.cls]}.wav"
        sf.write(path, np.stack([clip.caller, clip.agent], axis=1), SR, subtype="PCM_16")
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        results = list(tqdm(pool.imap(_job, jobs, chunksize=8), total=len(jobs), desc=f"corpus {split}"))
    caller = np.stack([r[0] for r in results]).astype(np.int16)
    agent = np.stack([r[1] for r in results]).astype(np.int16)
    path = OUT / f"{split}_audio.npz"
    np.savez(
        path,
        caller=caller,
        agent=agent,
        cls=np.array([r[2] for r in results], dtype=np.int64),
        onset=np.array([r[3] for r in results], dtype=np.float32),
        end=np.array([r[4] for r in results], dtype=np.float32),
    )
    with open(OUT / f"{split}.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(r[5]) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--splits", nargs="+", default=["train", "val"], choices=sorted(DEFAULT_COUNTS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--scale", type=float, default=1.0, help="multiply every class count (e.g. 0.1 for a smoke run)"
    )
    ap.add_argument("--wav-examples", type=int, default=8, help="also write this many clips as stereo WAVs")
    args = ap.parse_args(argv)
    for split in args.splits:
        counts = {k: max(1, int(v * args.scale)) if v else 0 for k, v in DEFAULT_COUNTS[split].items()}
        path = build(split, counts, args.seed, args.workers, args.wav_examples)
        print(f"{split}: {sum(counts.values())} clips -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
