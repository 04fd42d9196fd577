"""Choose the early floor and the endpointing range of `turn_detection: model` on validation only.

    PYTHONPATH=. .venv/bin/python -m models.eot.select_floor [--model models/eot/eot.onnx]

The committed ONNX model (its calibration included) answers every decision point of the validation
split (`models/eot/corpus/tts-val.npz`: the training engines' held-out voices, never flite, festival or
espeak-ng's test variants) at every silence the engine asks (every 0.1 s from 0.2 s on). The engine's
rule, early floor included (`gateway.turns.engine`: wait = max − p·(max − min), cut to `floor` when
p ≥ threshold), is simulated per mode (audio only, with words) over a grid of (threshold, floor, min,
max). Per mode it prints the Pareto front (cut-offs against median latency) and the setting chosen:
the lowest `p95 + median/2` with cut-offs ≤ 4 % (the training's selection objective), which the agents
may ship. Writes `models/eot/floor_selection.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from gateway.turns.eot_features import word_features
from gateway.turns.eot_onnx import MODEL_PATH, OnnxEndOfTurnModel

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
STEP = 0.1
FIRST = 0.2
MAX_HI = 3.0
CUTOFF_CAP = 0.04

THRESHOLDS: tuple[float | None, ...] = (None, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
FLOORS = (0.2, 0.25, 0.3)
MINS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
MAXES = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0)


def silences(hi: float = MAX_HI) -> np.ndarray:
    return np.arange(FIRST, hi + STEP / 2 + 1e-9, STEP)


def answers(model: OnnxEndOfTurnModel, data: dict[str, np.ndarray], with_words: bool) -> np.ndarray:
    """P(finished) [silences, points] as the runtime model gives it (calibration included)."""
    n = len(data["label"])
    words = data["words"] if with_words else np.zeros_like(data["words"])
    out = np.zeros((len(silences()), n), dtype=np.float32)
    for k, s in enumerate(silences()):
        for i in range(0, n, 512):
            sl = slice(i, i + 512)
            emb = data["emb"][sl] if model.uses_embedding else None
            out[k, sl] = model.run(
                data["audio"][sl], words[sl], np.full(len(words[sl]), s, dtype=np.float32), emb
            )
    return out


def simulate(
    probs: np.ndarray,
    label: np.ndarray,
    pause: np.ndarray,
    lo: float,
    hi: float,
    threshold: float | None,
    floor: float,
) -> dict[str, float]:
    """The engine's rule (early floor included) on every point; latencies from the speech end."""
    fired = np.full(probs.shape[1], np.inf, dtype=np.float32)
    for k, s in enumerate(silences(hi)):
        p = probs[k]
        wait = hi - p * (hi - lo)
        if threshold is not None:
            wait = np.where(p >= threshold, np.minimum(wait, floor), wait)
        t_fire = np.maximum(wait, s)
        newly = (t_fire < s + STEP) & np.isinf(fired)
        fired[newly] = t_fire[newly]
    fired[np.isinf(fired)] = hi
    final = label == 1
    cut = (~final) & (fired < pause)
    return {
        "cutoff": float(cut.sum() / max(1, (~final).sum())),
        "median_ms": float(np.median(fired[final]) * 1000),
        "p95_ms": float(np.percentile(fired[final], 95) * 1000),
    }


def score(r: dict[str, object]) -> float:
    cut, med, p95 = (float(r[k]) for k in ("cutoff", "median_ms", "p95_ms"))  # type: ignore[arg-type]
    return p95 + 0.5 * med + 50000 * max(0.0, cut - CUTOFF_CAP)


def sweep(probs: np.ndarray, label: np.ndarray, pause: np.ndarray) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for thr, floor, lo, hi in itertools.product(THRESHOLDS, FLOORS, MINS, MAXES):
        if lo > hi or floor > lo or (thr is None and floor != FLOORS[0]):
            continue
        r = simulate(probs, label, pause, lo, hi, thr, floor)
        rows.append(
            {"threshold": thr, "floor": floor if thr is not None else None, "min": lo, "max": hi, **r}
        )
    return rows


def front(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Pareto front: the lowest median at each cut-off level."""
    out: list[dict[str, object]] = []
    best = float("inf")
    for r in sorted(rows, key=lambda r: (float(r["cutoff"]), float(r["median_ms"]))):  # type: ignore[arg-type]
        if float(r["median_ms"]) < best:  # type: ignore[arg-type]
            best = float(r["median_ms"])  # type: ignore[arg-type]
            out.append(r)
    return out


def fmt(r: dict[str, object]) -> str:
    thr = "none" if r["threshold"] is None else f"{r['threshold']}@{r['floor']}s"
    return (
        f"floor {thr:<10} {r['min']:.1f}–{r['max']:.1f} s: cut-offs {float(r['cutoff']):5.1%} "  # type: ignore[arg-type]
        f"median {float(r['median_ms']):5.0f} p95 {float(r['p95_ms']):5.0f} ms"  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL_PATH)
    ap.add_argument("--val", default="tts-val")
    ap.add_argument("--out", type=Path, default=HERE / "floor_selection.json")
    args = ap.parse_args(argv)
    raw = np.load(CORPUS / f"{args.val}.npz")
    with open(CORPUS / f"{args.val}.jsonl") as fh:
        metas = [json.loads(line) for line in fh]
    data = {
        "audio": raw["audio"].astype(np.float32),
        "emb": raw["emb"].astype(np.float32),
        "label": raw["label"],
        "pause": raw["pause"],
        "words": np.stack([word_features(m["words"]) for m in metas]),
    }
    model = OnnxEndOfTurnModel(args.model)
    result: dict[str, object] = {"model": str(args.model), "val": args.val, "points": len(data["label"])}
    for mode, with_words in (("audio", False), ("words", True)):
        probs = answers(model, data, with_words)
        rows = sweep(probs, data["label"], data["pause"])
        ok = [r for r in rows if float(r["cutoff"]) <= CUTOFF_CAP]  # type: ignore[arg-type]
        chosen = min(ok or rows, key=score)
        no_floor = min(
            [r for r in ok if r["threshold"] is None] or rows,
            key=score,
        )
        print(f"\n## {mode}: {len(rows)} settings on {args.val} ({len(data['label'])} points)")
        print("Pareto front (cut-offs ≤ 20 %):")
        for r in front(rows):
            if float(r["cutoff"]) <= 0.2:  # type: ignore[arg-type]
                print("  " + fmt(r))
        print("chosen (lowest p95 + median/2 with cut-offs ≤ 4 %): " + fmt(chosen))
        print("best without the floor:                             " + fmt(no_floor))
        result[mode] = {"chosen": chosen, "no_floor": no_floor, "front": front(rows)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
