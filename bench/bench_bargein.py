"""Cost of the barge-in detector (speech front end + model) per 100 ms step per call, single vs batched,
and per second of whole calls.

    python bench/bench_bargein.py [--calls 1 8 32 128] [--replay CALL.wav ...]

A "step" is what the session does every 100 ms during an open overlap: push five 20 ms frames of caller
and agent audio, then ask for the probability. The first query of an overlap also computes the steps
from 0.24 s before the onset (and the front end's 0.78 s of context); it is reported separately. CPU time
is process time, onnxruntime with one thread. This part drives the detector alone (a component bench).

`--replay` runs stereo call recordings through the whole turn pipeline (`gateway replay`'s Replayer:
Silero VAD, echo gate, engine) in vad mode, adaptive mode, and adaptive mode with the lexical check
(`interruption.lexical_check`, PocketSphinx decodes of the overlap's words), and reports the difference
in CPU per second of call: what adaptive barge-in costs a call on average, overlaps and silences
included, and the lexical decodes' CPU per decode (best of `--repeat` runs; noisy on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from gateway.turns.bargein_onnx import OnnxBargeInDetector, OnnxBargeInStream

SR = 8000
FRAME = 160


def _audio(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    env = np.repeat(rng.uniform(0.0, 1.0, n // 800 + 1), 800)[:n]
    return (rng.standard_normal(n) * 3000 * env).astype(np.int16)


def run(calls: int, seconds: float, batched: bool) -> tuple[float, float]:
    """(CPU µs of the first query per call, CPU µs per later 100 ms step per call)."""
    det = OnnxBargeInDetector()
    rng = np.random.default_rng(calls)
    streams: list[OnnxBargeInStream] = [det.open_stream() for _ in range(calls)]
    audio = [(_audio(rng, 1.5 + seconds), _audio(rng, 1.5 + seconds)) for _ in range(calls)]
    onset = 1.2
    pre = int(1.3 * SR)
    for s, (c, a) in zip(streams, audio, strict=True):
        for k in range(0, pre, FRAME):
            s.push(c[k : k + FRAME], a[k : k + FRAME])
    t0 = time.process_time()
    if batched:
        det.probability_batch([(s, onset) for s in streams])
    else:
        for s in streams:
            s.probability(onset)
    first = (time.process_time() - t0) / calls
    steps = 0
    t0 = time.process_time()
    for start in range(pre, pre + int(seconds * SR) - 5 * FRAME, 5 * FRAME):
        for s, (c, a) in zip(streams, audio, strict=True):
            for k in range(start, start + 5 * FRAME, FRAME):
                s.push(c[k : k + FRAME], a[k : k + FRAME])
        if batched:
            det.probability_batch([(s, onset) for s in streams])
        else:
            for s in streams:
                s.probability(onset)
        steps += 1
    per_step = (time.process_time() - t0) / (steps * calls)
    return first * 1e6, per_step * 1e6


def replay_cost(files: list[str], repeat: int) -> None:
    from gateway.replay import Replayer
    from gateway.turns.lexical import shared_checker
    from gateway.turns.options import InterruptionOptions, LexicalCheckOptions, TurnHandlingOptions
    from gateway.turns.silero import SileroModel

    model = SileroModel()
    per_mode: dict[str, float] = {}
    seconds = 0.0
    decodes: list[float] = []
    for mode in ("vad", "adaptive", "lexical"):
        interruption = InterruptionOptions(
            mode="vad" if mode == "vad" else "adaptive",
            detector="onnx",
            lexical_check=LexicalCheckOptions(enabled=mode == "lexical"),
        )
        replayer = Replayer(TurnHandlingOptions(interruption=interruption), model=model)
        if mode == "lexical":  # the decoder loads once per process (seconds): not part of a call's cost
            shared_checker(interruption.backchannel_lexicon, interruption.lexical_check.commands).load()
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            results = [replayer.replay_file(f) for f in files]
            best = min(best, time.process_time() - t0)
            seconds = sum(r.duration for r in results)
            if mode == "lexical":
                decodes = [d for r in results for d in r.lexical_seconds]
        per_mode[mode] = best
    extra = (per_mode["adaptive"] - per_mode["vad"]) / seconds
    print(f"\n{len(files)} calls, {seconds:.0f} s of audio, whole pipeline (Replayer), CPU per call-second:")
    print(f"  vad mode       {1000 * per_mode['vad'] / seconds:6.2f} ms  (baseline)")
    print(
        f"  adaptive mode  {1000 * per_mode['adaptive'] / seconds:6.2f} ms"
        f"  ({per_mode['adaptive'] / per_mode['vad']:.2f}x)"
    )
    print(
        f"  adaptive + lexical check  {1000 * per_mode['lexical'] / seconds:6.2f} ms"
        f"  ({per_mode['lexical'] / per_mode['vad']:.2f}x)"
    )
    print(
        f"  barge-in detector: {1000 * extra:.2f} ms per call-second = {extra * 100:.2f} % of a core per call"
    )
    lexical = (per_mode["lexical"] - per_mode["adaptive"]) / seconds
    if decodes:
        print(
            f"  lexical check: {1000 * lexical:.2f} ms per call-second = {lexical * 100:.2f} % of a core"
            " per call;"
            f" {len(decodes)} decodes, CPU median {1000 * float(np.median(decodes)):.0f} ms,"
            f" p95 {1000 * float(np.percentile(decodes, 95)):.0f} ms per decode"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--replay", nargs="*", default=[], metavar="CALL.wav", help="stereo call recordings")
    ap.add_argument("--seconds", type=float, default=1.9, help="overlap length per measurement (<= 2 s)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"{'calls':>5}  {'path':>8}  {'first query µs/call':>20}  "
        f"{'100 ms step µs/call':>20}  {'vs single':>9}"
    )
    base = None
    for calls in args.calls:
        for batched in (False, True):
            if calls == 1 and batched:
                continue
            best = min((run(calls, args.seconds, batched) for _ in range(args.repeat)), key=lambda r: r[1])
            if base is None:
                base = best[1]
            path = "batched" if batched else "single"
            print(f"{calls:>5}  {path:>8}  {best[0]:>20.0f}  {best[1]:>20.1f}  {base / best[1]:>8.2f}x")
    print(f"\none core carries about {1e5 / base:.0f} overlapping calls in real time (single path)")
    if args.replay:
        replay_cost(args.replay, args.repeat)


if __name__ == "__main__":
    main()
