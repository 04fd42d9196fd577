"""Cost of the audio primitives per 20 ms frame, against audioop as the baseline in the same run.

    .venv/bin/python bench/bench_audio.py

Prints µs per frame (median of several repeats) for G.711 μ-law decode/encode (ours vs audioop) and for
8 kHz -> 16 kHz resampling (streaming, frame by frame; one-shot per frame for comparison).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

from gateway.audio import StreamResampler, resample, samples_per_frame, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13 without audioop-lts: no baseline
        audioop = None  # type: ignore[assignment]

RATE = 8000
N = samples_per_frame(RATE)  # 160
FRAMES = 2000  # 40 s of audio per timing (per 100 x 40 s for the batched rows)
REPEATS = 5


def per_frame_us(fn: Callable[[int], object]) -> float:
    """Median over REPEATS of the mean time per call of fn(i) over FRAMES calls, in µs."""
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for i in range(FRAMES):
            fn(i)
        times.append((time.perf_counter() - t0) / FRAMES * 1e6)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(FRAMES * N) / RATE
    signal = (8000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 300, len(t))).astype(np.int16)
    frames = signal.reshape(FRAMES, N).copy()
    frame_bytes = [f.tobytes() for f in frames]
    codes = ulaw_encode(frames)
    code_bytes = [c.tobytes() for c in codes]

    rows: list[tuple[str, float, float | None]] = []
    ours = per_frame_us(lambda i: ulaw_decode(code_bytes[i]))
    base = per_frame_us(lambda i: audioop.ulaw2lin(code_bytes[i], 2)) if audioop else None
    rows.append(("ulaw decode (bytes -> int16)", ours, base))
    ours = per_frame_us(lambda i: ulaw_encode(frames[i]).tobytes())
    base = per_frame_us(lambda i: audioop.lin2ulaw(frame_bytes[i], 2)) if audioop else None
    rows.append(("ulaw encode (int16 -> bytes)", ours, base))

    # Many calls' frames in one array (sessions batching per tick): per-call overhead is shared.
    block = b"".join(code_bytes[:100])
    ours = per_frame_us(lambda i: ulaw_decode(block)) / 100
    base = per_frame_us(lambda i: audioop.ulaw2lin(block, 2)) / 100 if audioop else None
    rows.append(("ulaw decode, 100 frames per call", ours, base))
    block_pcm = frames[:100]
    ours = per_frame_us(lambda i: ulaw_encode(block_pcm).tobytes()) / 100
    base = per_frame_us(lambda i: audioop.lin2ulaw(block_pcm.tobytes(), 2)) / 100 if audioop else None
    rows.append(("ulaw encode, 100 frames per call", ours, base))

    stream = StreamResampler(RATE, 16000)
    rows.append(("resample 8k->16k, streaming", per_frame_us(lambda i: stream.process(frames[i])), None))
    rows.append(
        ("resample 8k->16k, one-shot", per_frame_us(lambda i: resample(frames[i], RATE, 16000)), None)
    )

    print(f"20 ms frame = {N} samples at {RATE} Hz; median of {REPEATS} x {FRAMES} frames")
    print(f"{'operation':<32} {'ours µs':>9} {'audioop µs':>11} {'ours/audioop':>13}")
    for name, us, base_us in rows:
        b = f"{base_us:11.2f}" if base_us is not None else f"{'-':>11}"
        r = f"{us / base_us:13.2f}" if base_us is not None else f"{'-':>13}"
        print(f"{name:<32} {us:9.2f} {b} {r}")
    print("(one 20 ms frame of real time = 20000 µs)")


if __name__ == "__main__":
    main()
