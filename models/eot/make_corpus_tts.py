"""Build the multi-engine end-of-turn corpus: `python -m models.eot.make_corpus_tts` (project venv).

Turns (`models.eot.phrases`: the `train` + `extra` templates for training, the held-out templates for
validation) are spoken by the training engines (`models.eot.voices`: espeak-ng, pico, piper) and
rendered to line audio (`models.eot.render_tts`). Every end of a part is a decision point (label 1 at
the end of the last part), twice with the speech end moved by -60…+150 ms. Per point the corpus keeps
both audio inputs of the model as the runtime computes them: the prosodic window
(`gateway.turns.eot_features.window_features`) and the speech-embedding steps of the front end learned
from real speech (`gateway.turns.speech_embedding`, run over the call as a live stream would).

flite and festival are never rendered here: they are the benchmark's held-out engines.

Output (git-ignored): `models/eot/corpus/tts-{split}.npz` (`audio` float16 [N, N_FRAMES, N_AUDIO],
`emb` float16 [N, EMB_STEPS, EMB_DIM], `label`, `pause`, `family`, `flat`, `engine`) and
`tts-{split}.jsonl` (words and recipe per point). Turn `i` of a split comes from
`SeedSequence([seed, 100 + split_id, i])` alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gateway.turns.eot_features import embedding_steps, embedding_window, window_features
from gateway.turns.speech_embedding import FrontEnd, embed_clip
from models.eot.make_corpus import FAMILY_NAMES, JITTERS, SPLIT_IDS
from models.eot.phrases import FAMILY_WEIGHTS, TEMPLATES, draw_turn
from models.eot.render import SR
from models.eot.render_tts import render_turn_tts
from models.eot.voices import ENGINE_WEIGHTS, draw_voice

OUT = Path(__file__).parent / "corpus"
DEFAULT_TURNS = {"train": 4000, "val": 500}
ENGINES = tuple(ENGINE_WEIGHTS)


def make_points(front: FrontEnd, split: str, index: int, seed: int) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 100 + SPLIT_IDS[split], index]))
    training = split == "train"
    # Training mixes the first recipe's two training template sets (the extra one: more short
    # answers, questions); validation uses the held-out templates.
    tkey = ("extra" if rng.random() < 0.4 else "train") if training else split
    family, turn = draw_turn(rng, TEMPLATES[tkey], FAMILY_WEIGHTS.get(tkey))
    draw = draw_voice(rng, tkey if training else split)
    pauses = (0.45, 2.2) if training else (0.5, 1.8)
    rendered = render_turn_tts(
        rng, turn, draw, pause_range=pauses, flat_prob=0.12 if training else 0.0, tail=1.0
    )
    if rendered is None:
        return []
    line = rendered.line
    emb = embed_clip(front, line)
    points = []
    for i, seg in enumerate(rendered.segments):
        words = rendered.words_until(i)
        for _ in range(JITTERS):
            jitter = float(rng.uniform(-0.06, 0.15))
            end = round((seg.end + jitter) * SR)
            k0, k1 = embedding_steps(end)
            e = embedding_window(emb[max(k0, 0) : k1], k0)
            feats = window_features(line, 0, end)
            meta = {
                "index": index,
                "words": words,
                "voice": rendered.voice,
                "engine": draw.voice.engine,
                "family": family,
                "jitter": round(jitter, 4),
                "text": seg.text,
            }
            pause = float("inf") if seg.final else seg.pause_after
            points.append(
                (
                    feats,
                    e,
                    int(seg.final),
                    pause,
                    FAMILY_NAMES.index(family),
                    int(seg.flat),
                    ENGINES.index(draw.voice.engine),
                    meta,
                )
            )
    return points


def build(split: str, turns: int, seed: int, first: int = 0) -> Path:
    """Turns first … first + turns - 1 of `split` -> tts-{split}.npz (tts-{split}-{first}.npz if first > 0:
    a further part of the same split, so the corpus can grow without rebuilding what exists)."""
    front = FrontEnd()
    OUT.mkdir(parents=True, exist_ok=True)
    points = []
    for i in tqdm(range(first, first + turns), desc=f"corpus tts-{split}", file=sys.stderr, mininterval=10):
        points += make_points(front, split, i, seed)
    name = f"tts-{split}" + (f"-{first}" if first else "")
    path = OUT / f"{name}.npz"
    np.savez_compressed(
        path,
        audio=np.stack([p[0] for p in points]).astype(np.float16),
        emb=np.stack([p[1] for p in points]).astype(np.float16),
        label=np.array([p[2] for p in points], dtype=np.int8),
        pause=np.array([p[3] for p in points], dtype=np.float32),
        family=np.array([p[4] for p in points], dtype=np.int8),
        flat=np.array([p[5] for p in points], dtype=np.int8),
        engine=np.array([p[6] for p in points], dtype=np.int8),
    )
    with open(OUT / f"{name}.jsonl", "w") as fh:
        for p in points:
            fh.write(json.dumps(p[7]) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--splits", nargs="+", default=["val", "train"])
    ap.add_argument("--turns", type=int, default=0, help="turns per split (0: the defaults)")
    ap.add_argument(
        "--first", type=int, default=0, help="index of the first turn (a further part of a split)"
    )
    args = ap.parse_args(argv)
    for split in args.splits:
        path = build(split, args.turns or DEFAULT_TURNS[split], args.seed, args.first)
        print(f"{split}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
