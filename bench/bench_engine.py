"""Turn engine + VAD cost per call-second at 8 kHz, one call and N calls batched.

Prints CPU time per second of call audio for:
  - the baseline measured in the same run: Silero VAD alone on one stream;
  - the full turn pipeline (VAD, echo gate, heuristic barge-in detector, TurnEngine) for one call;
  - N calls whose VAD runs in one batch per 20 ms tick (`VadBatch`), the rest per call;
and how many calls one core could carry in real time (1 s / CPU per call-second).

    .venv/bin/python bench/bench_engine.py [--seconds 30] [--calls 1,8,32,64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_fixtures import espeak, place

from gateway.audio.frames import iter_frames
from gateway.turns.heuristics import HeuristicBargeInDetector
from gateway.turns.options import TurnHandlingOptions
from gateway.turns.pipeline import TurnPipeline
from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadBatch, VadStream

RATE = 8000


def make_call(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """An agent talking most of the time, a caller with backchannels and barge-ins."""
    agent_line = espeak("We have openings on Tuesday at nine, Tuesday at eleven and Wednesday at two.")
    caller_lines = [
        espeak("mm-hmm", voice="en-gb"),
        espeak("actually wait, I need a morning slot", voice="en-gb"),
    ]
    agent_items, caller_items = [], []
    t = 0.5
    k = 0
    while t < seconds - 6:
        agent_items.append((t, agent_line))
        caller_items.append((t + 2.0, caller_lines[k % 2]))
        t += len(agent_line) / RATE + 1.0
        k += 1
    return place(seconds, caller_items), place(seconds, agent_items)


def cpu(fn: object) -> float:
    start = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - start


def run_single(model: SileroModel, caller: np.ndarray, agent: np.ndarray) -> None:
    pipeline = TurnPipeline(TurnHandlingOptions(), VadStream(model, RATE), bargein=HeuristicBargeInDetector())
    audible = False
    for c, a in zip(iter_frames(caller, RATE), iter_frames(agent, RATE), strict=True):
        is_audible = bool(np.abs(a).max() > 100) or (audible and pipeline.engine.agent.value == "paused")
        if is_audible and not audible and pipeline.engine.agent.value == "silent":
            pipeline.agent_speech_start()
        elif not is_audible and audible and pipeline.engine.agent.value == "speaking":
            pipeline.agent_speech_end()
        audible = is_audible
        pipeline.process_frame(c, a)


def run_batched(model: SileroModel, caller: np.ndarray, agent: np.ndarray, n: int) -> None:
    batch = VadBatch(model, RATE)
    pipelines = [
        TurnPipeline(TurnHandlingOptions(), batch.stream(), bargein=HeuristicBargeInDetector())
        for _ in range(n)
    ]
    # each call hears the same audio shifted, so their overlaps do not coincide
    shifts = [(k * 1601) % len(caller) for k in range(n)]
    callers = [np.roll(caller, s) for s in shifts]
    agents = [np.roll(agent, s) for s in shifts]
    frames = len(caller) // 160
    audible = [False] * n
    for i in range(frames):
        sl = slice(i * 160, (i + 1) * 160)
        for k, p in enumerate(pipelines):
            p.vad.feed(callers[k][sl])
        chunks = batch.process()
        for k, p in enumerate(pipelines):
            a = agents[k][sl]
            state = p.engine.agent.value
            is_audible = bool(np.abs(a).max() > 100)
            if is_audible and not audible[k] and state == "silent":
                p.agent_speech_start()
            elif not is_audible and audible[k] and state == "speaking":
                p.agent_speech_end()
            audible[k] = is_audible
            p.process_frame(callers[k][sl], a, chunks.get(p.vad, []))


def run_vad_only(model: SileroModel, caller: np.ndarray) -> None:
    stream = VadStream(model, RATE)
    for frame in iter_frames(caller, RATE):
        stream.push(frame)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--calls", default="1,8,32,64")
    args = parser.parse_args()
    model = SileroModel()
    caller, agent = make_call(args.seconds)
    audio_s = len(caller) / RATE
    base = cpu(lambda: run_vad_only(model, caller)) / audio_s
    rows = [("VAD alone, 1 stream (baseline)", 1, base)]
    rows.append(("pipeline, 1 call", 1, cpu(lambda: run_single(model, caller, agent)) / audio_s))
    for n in (int(x) for x in args.calls.split(",")):
        rows.append(
            (
                f"pipeline, {n} calls, VAD batched",
                n,
                cpu(lambda n=n: run_batched(model, caller, agent, n)) / audio_s / n,
            )
        )
    print(f"\n{audio_s:.0f} s of 8 kHz call audio per call; CPU time per call-second (lower is better)\n")
    header = f"{'configuration':40} {'calls':>5} {'CPU ms / call-s':>16} {'vs baseline':>12}"
    print(f"{header} {'calls per core':>15}")
    for name, n, per in rows:
        print(f"{name:40} {n:5d} {per * 1000:16.2f} {per / base:11.2f}x {1.0 / per:15.0f}")


if __name__ == "__main__":
    main()
