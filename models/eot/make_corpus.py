"""Build the end-of-turn corpus: `python -m models.eot.make_corpus` (from the repository root).

Each turn (see `models.eot.phrases`) is rendered to line audio (`models.eot.render`); every end of a
part is a *decision point*: the caller has fallen silent there, and the model must say whether the turn
is finished (the last part) or not (the caller goes on after a pause of `pause` seconds). For each
point the recipe stores the model's audio window around the speech end as the runtime computes it
(`gateway.turns.eot_features.window_features`), with the speech end moved by a random -60…+150 ms
(VAD places the end of the last voiced chunk near, not at, the end of the voice), twice per point.

Splits: `train` and `extra` (training: the first recipe's turns, and more short answers, questions
and intonation systems, see `models.eot.phrases`), `val` (held-out voices and phrases).

Output (git-ignored): `models/eot/corpus/{split}.npz` with `audio` (float16 [N, N_FRAMES, N_AUDIO]),
`label` (1 = finished), `pause` (s; inf when finished), `family`, `flat`, and `{split}.jsonl` with the
words and recipe of every point. Turn `i` of a split comes from `SeedSequence([seed, split_id, i])`
alone, so the corpus is the same whatever the worker count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gateway.turns.eot_features import window_features
from models.eot.phrases import FAMILIES, FAMILY_WEIGHTS, TEMPLATES, VOICES, draw_turn
from models.eot.render import SR, render_turn

OUT = Path(__file__).parent / "corpus"
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "extra": 3}
DEFAULT_TURNS = {"train": 6000, "val": 700, "extra": 2500}
JITTERS = 2
FAMILY_NAMES = tuple(FAMILIES)

Point = tuple[np.ndarray, int, float, int, int, dict[str, Any]]


def make_points(split: str, index: int, seed: int) -> list[Point]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))
    family, turn = draw_turn(rng, TEMPLATES[split], FAMILY_WEIGHTS.get(split))
    voice = VOICES[split].draw(rng)
    # Training also sees shorter and longer pauses than the benchmark's 0.5–1.8 s.
    training = split in ("train", "extra")
    pauses = (0.45, 2.2) if training else (0.5, 1.8)
    rendered = render_turn(rng, turn, voice, pause_range=pauses, flat_prob=0.12 if training else 0.0)
    points: list[Point] = []
    for i, seg in enumerate(rendered.segments):
        words = rendered.words_until(i)
        for _ in range(JITTERS):
            jitter = float(rng.uniform(-0.06, 0.15))
            end = round((seg.end + jitter) * SR)
            feats = window_features(rendered.line, 0, end)
            meta = {
                "index": index,
                "words": words,
                "voice": voice,
                "family": family,
                "jitter": round(jitter, 4),
                "text": seg.text,
            }
            pause = float("inf") if seg.final else seg.pause_after
            points.append((feats, int(seg.final), pause, FAMILY_NAMES.index(family), int(seg.flat), meta))
    return points


def _job(args: tuple[str, int, int]) -> list[Point]:
    return make_points(*args)


def build(split: str, turns: int, seed: int, workers: int) -> Path:
    jobs = [(split, i, seed) for i in range(turns)]
    OUT.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers) as pool:
            results = list(tqdm(pool.imap(_job, jobs, chunksize=16), total=len(jobs), desc=f"corpus {split}"))
    else:
        results = [_job(j) for j in tqdm(jobs, desc=f"corpus {split}")]
    points = [p for r in results for p in r]
    path = OUT / f"{split}.npz"
    np.savez_compressed(
        path,
        audio=np.stack([p[0] for p in points]).astype(np.float16),
        label=np.array([p[1] for p in points], dtype=np.int8),
        pause=np.array([p[2] for p in points], dtype=np.float32),
        family=np.array([p[3] for p in points], dtype=np.int8),
        flat=np.array([p[4] for p in points], dtype=np.int8),
    )
    with open(OUT / f"{split}.jsonl", "w") as fh:
        for p in points:
            fh.write(json.dumps(p[5]) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--splits", nargs="+", default=["train", "extra", "val"])
    ap.add_argument("--turns", type=int, default=0, help="turns per split (0: the defaults)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    for split in args.splits:
        n = args.turns or DEFAULT_TURNS.get(split, 700)
        path = build(split, n, args.seed, args.workers)
        print(f"{split}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
