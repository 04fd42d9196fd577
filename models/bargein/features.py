"""Step features of the barge-in corpus, with the runtime's code: `python -m models.bargein.features`.

For every clip of `corpus/{split}_audio.npz` (see `make_corpus.py`), every 80 ms step gets the caller's
speech embedding (`gateway.turns.speech_embedding`, the front end pushed 20 ms at a time as in a live call)
and the mean log-mel energies of the caller line and of the agent playout (`bargein_features.step_logmel`).
Writes `corpus/{split}_steps.npz`: `emb` float16 [N, S, 96], `caller` and `agent` float16 [N, S, 24], and
the clip labels (`cls`, `onset`, `end`, `voice`, `source`). Progress on stderr; `--workers` processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gateway.turns.bargein_features import step_logmel
from gateway.turns.speech_embedding import FrontEnd, embed_clip

CORPUS = Path(__file__).parent / "corpus"

_front: FrontEnd | None = None


def _job(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    global _front
    if _front is None:
        _front = FrontEnd()
    caller, agent = pair
    emb = embed_clip(_front, caller)
    c = step_logmel(caller)
    a = step_logmel(agent)
    n = min(len(emb), len(c), len(a))
    return emb[:n], c[:n], a[:n]


def build(split: str, workers: int) -> Path:
    d = np.load(CORPUS / f"{split}_audio.npz")
    caller, agent = d["caller"], d["agent"]
    meta = [json.loads(line) for line in (CORPUS / f"{split}.jsonl").read_text().splitlines()]
    pairs = ((caller[i], agent[i]) for i in range(len(caller)))
    with mp.get_context("fork").Pool(workers) as pool:
        res = list(tqdm(pool.imap(_job, pairs, chunksize=16), total=len(caller), desc=f"features {split}"))
    path = CORPUS / f"{split}_steps.npz"
    np.savez(
        path,
        emb=np.stack([r[0] for r in res]).astype(np.float16),
        caller=np.stack([r[1] for r in res]).astype(np.float16),
        agent=np.stack([r[2] for r in res]).astype(np.float16),
        cls=d["cls"],
        onset=d["onset"],
        end=d["end"],
        voice=np.array([str(m.get("voice", m.get("noise", ""))) for m in meta]),
        text=np.array([str(m.get("text", "")) for m in meta]),
    )
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", nargs="+", default=["train", "val"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    for split in args.splits:
        print(f"{split}: -> {build(split, args.workers)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
