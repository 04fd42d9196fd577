"""Silero VAD cost at 8 kHz: one stream alone vs N streams batched in one ONNX run per step.

    .venv/bin/python bench/bench_vad.py [--seconds 4] [--repeats 5]

Every configuration pushes 20 ms int16 frames through the real API (`VadStream.push` for one
stream, `VadBatch.push_many` for N streams), so Python overhead (buffering, stacking, state
gather/scatter) is included. Configurations are interleaved over the repeats and the median is
reported, so drift on a shared, noisy machine hits them all alike. CPU time is `process_time`
(the session runs with 1 intra-op and 1 inter-op thread); wall time is `perf_counter`.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadBatch, VadStream

RATE = 8000
FRAME = RATE // 50  # 20 ms


def signals(count: int, seconds: float, seed: int = 0) -> list[NDArray[np.int16]]:
    """Speech-like test audio: noise bursts with syllable-rate envelopes (cost does not depend on it)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = []
    for _ in range(count):
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None)
        audio = rng.standard_normal(n) * (300 + 4000 * envelope)
        out.append(np.clip(audio, -32768, 32767).astype(np.int16))
    return out


def run_single(model: SileroModel, audio: NDArray[np.int16]) -> tuple[float, float, int]:
    stream = VadStream(model, RATE)
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    chunks = 0
    for frame in frames:
        chunks += len(stream.push(frame))
    return time.process_time() - cpu0, time.perf_counter() - wall0, chunks


def run_batch(model: SileroModel, audios: list[NDArray[np.int16]]) -> tuple[float, float, int]:
    batch = VadBatch(model, RATE)
    streams = [batch.stream() for _ in audios]
    ticks = [
        [(s, a[i : i + FRAME]) for s, a in zip(streams, audios, strict=True)]
        for i in range(0, len(audios[0]), FRAME)
    ]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    chunks = 0
    for items in ticks:
        chunks += sum(len(r) for r in batch.push_many(items))
    return time.process_time() - cpu0, time.perf_counter() - wall0, chunks


def run_raw(model: SileroModel, audios: list[NDArray[np.int16]]) -> tuple[float, float, int]:
    """`SileroModel.infer` alone on pre-cut windows: the floor under the streaming API's overhead."""
    n, ctx = model.chunk_samples(RATE), model.context_samples(RATE)
    data = np.stack(audios).astype(np.float32) / 32768.0
    windows = [
        np.ascontiguousarray(data[:, max(0, i - ctx) : i + n])
        if i
        else np.pad(data[:, :n], ((0, 0), (ctx, 0)))
        for i in range(0, data.shape[1] - n + 1, n)
    ]
    state = model.initial_state(len(audios))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for window in windows:
        _, state = model.infer(window, state, RATE)
    return time.process_time() - cpu0, time.perf_counter() - wall0, len(windows) * len(audios)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per stream per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128])
    args = parser.parse_args()

    model = SileroModel(intra_op_threads=1)
    audio_by_n = {n: signals(n, args.seconds, seed=n) for n in [1, *args.sizes]}
    # warm-up: first runs allocate and pick kernels
    run_single(model, audio_by_n[1][0][: RATE // 2])
    for n in args.sizes:
        run_batch(model, [a[: RATE // 2] for a in audio_by_n[n]])

    largest = max(args.sizes)
    configs: dict[str, tuple[Callable[[], tuple[float, float, int]], int]] = {
        "(a) 1 stream, alone": (lambda: run_single(model, audio_by_n[1][0]), 1)
    }
    for n in args.sizes:
        configs[f"(b) {n} streams, batched"] = (functools.partial(run_batch, model, audio_by_n[n]), n)
    configs["    infer() only, 1 stream"] = (lambda: run_raw(model, audio_by_n[1]), 1)
    configs[f"    infer() only, {largest} streams"] = (lambda: run_raw(model, audio_by_n[largest]), largest)

    cpu: dict[str, list[float]] = {name: [] for name in configs}
    wall: dict[str, list[float]] = {name: [] for name in configs}
    t_start = time.perf_counter()
    for _ in range(args.repeats):
        for name, (run, _) in configs.items():
            c, w, chunks = run()
            cpu[name].append(c / chunks)
            wall[name].append(w / chunks)
    elapsed = time.perf_counter() - t_start

    chunks_per_second = RATE / model.chunk_samples(RATE)
    print(
        f"Silero VAD v5, onnxruntime {ort.__version__}, 1 intra-op thread, {RATE} Hz, 32 ms chunks, "
        f"20 ms frames; {platform.machine()} x{os.cpu_count()}, median of {args.repeats} x "
        f"{args.seconds:g} s audio per stream ({elapsed:.1f} s)"
    )
    header = (
        f"{'configuration':<28}{'CPU us/chunk':>13}{'wall us/chunk':>14}{'CPU ms per s audio':>20}"
        f"{'vs (a)':>8}{'calls/core':>12}"
    )
    print(header)
    print("-" * len(header))
    base = statistics.median(cpu["(a) 1 stream, alone"])
    for label in configs:
        per_chunk = statistics.median(cpu[label])
        cpu_per_audio_s = per_chunk * chunks_per_second  # CPU seconds per second of one call's audio
        print(
            f"{label:<28}{per_chunk * 1e6:>13.1f}{statistics.median(wall[label]) * 1e6:>14.1f}"
            f"{cpu_per_audio_s * 1e3:>20.2f}{base / per_chunk:>7.2f}x{1.0 / cpu_per_audio_s:>12.0f}"
        )
    print(
        "us/chunk is per stream; 'vs (a)' = speed-up of CPU per stream against (a) in this run; "
        "calls/core = calls one core could carry in real time for VAD alone; "
        "'infer() only' rows skip the streaming API (framing, state gather/scatter) to show its overhead."
    )


if __name__ == "__main__":
    main()
