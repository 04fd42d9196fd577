"""Time from the end of caller speech to the first agent audio, per stage, with the offline backends.

Runs the dental agent (scripted policy, its tools on a local appointment service) on the demo
caller's first turns, in real time, once per STT/TTS pair, and prints per-stage medians:
endpointing (last voiced audio -> end of turn), STT final transcript (VAD end -> final), LLM first
token, TTS first audio (both from the end of turn), response (end of turn -> first agent frame) and
the total the caller waits. The baseline row is the cheapest pair measured in the same run.

    .venv/bin/python bench/bench_response.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
from pathlib import Path

from aiohttp import web

from gateway.agents.runner import AgentRunner
from gateway.audio.wav import read_wav
from gateway.calls import CallInfo, CallObserver, TurnTiming
from gateway.demo import synthesize_caller
from gateway.demo.appointments import make_app
from gateway.edges.wavfile import WavCallerTransport

PAIRS = (
    ("pocketsphinx + espeak-ng", "{provider: pocketsphinx}", "{provider: espeak-ng}"),
    ("faster-whisper + espeak-ng", "{provider: faster-whisper}", "{provider: espeak-ng}"),
    ("pocketsphinx + piper", "{provider: pocketsphinx}", "{provider: piper}"),
    ("faster-whisper + piper", "{provider: faster-whisper}", "{provider: piper}"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_run(stt: str, tts: str, caller_path: Path, seconds: float, port: int) -> list[TurnTiming]:
    overrides = (
        f"stt={stt}",
        f"tts={tts}",
        f"tools[0].url=http://127.0.0.1:{port}/availability",
        f"tools[1].url=http://127.0.0.1:{port}/book",
    )
    runner = AgentRunner(agent_overrides=overrides)
    runner.warm_up(["config/agents/dental.yaml"])
    caller = read_wav(caller_path).pcm[: int(seconds * 8000), 0]
    transport = WavCallerTransport(caller, CallInfo("bench", "replay", "config/agents/dental.yaml"), tail=2.0)
    observer = CallObserver()
    await runner(transport, observer)
    return observer.turn_timings


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


async def main_async(seconds: float) -> None:
    port = free_port()
    app_runner = web.AppRunner(make_app())
    await app_runner.setup()
    await web.TCPSite(app_runner, "127.0.0.1", port).start()
    caller = Path(tempfile.mkdtemp()) / "caller.wav"
    await asyncio.to_thread(synthesize_caller, caller)
    rows = []
    try:
        for name, stt, tts in PAIRS:
            timings = await one_run(stt, tts, caller, seconds, port)
            stages = [
                median([t.eou_delay_ms for t in timings]),
                median([t.stt_final_latency_ms for t in timings]),
                median([t.llm_ttft_ms for t in timings]),
                median([t.tts_first_audio_ms for t in timings]),
                median([t.response_ms for t in timings]),
                median([t.total_ms for t in timings]),
            ]
            rows.append((name, len(timings), stages))
    finally:
        await app_runner.cleanup()
    base_total = rows[0][2][-1] or 1.0
    print("\nmedian ms per caller turn (end of caller speech -> first agent audio)\n")
    head = f"{'STT + TTS':28} {'turns':>5} {'endpoint':>9} {'STT':>7} {'LLM':>7} {'TTS':>7} {'response':>9}"
    print(f"{head} {'total':>7} {'vs base':>8}")
    for name, n, values in rows:
        cells = " ".join(
            f"{'-' if v is None else f'{v:.0f}':>{w}}"
            for v, w in zip(values, (9, 7, 7, 7, 9, 7), strict=True)
        )
        ratio = (values[-1] or 0.0) / base_total
        print(f"{name:28} {n:5d} {cells} {ratio:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how much of the demo caller to play")
    args = parser.parse_args()
    asyncio.run(main_async(args.seconds))


if __name__ == "__main__":
    main()
