"""Concurrent carrier media-stream calls per core, against a bare echo in the same run.

    .venv/bin/python bench/bench_mediastream.py [--calls 4,16] [--seconds 10] [--dialect twilio]

For each N in --calls: N WebSocket clients (the carrier simulator) stream real-time μ-law for
--seconds into a `gateway` HTTP process (a subprocess, so its CPU is its own) whose calls run the
full session: VAD, heuristic barge-in, espeak-ng greeting, marks, clear on barge-in. The baseline,
the same N calls in the same run, replaces the session with a bare echo (frames back as they
come: WebSocket, JSON, base64 and μ-law only). Prints CPU per call in % of one core (idle cost
subtracted), calls per core, and lateness: how late the clients' frames went out, and how long
after its caller frame each agent chunk arrived (p50 / p99 / max). SIP's figure is quoted from
bench/out/bench_sip.txt when bench/bench_sip.py has written one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

TICK = os.sysconf("SC_CLK_TCK")
AGENT = """
agent: bench
greeting: >-
  Thank you for calling Bright Smile Dental. We have openings on Tuesday at nine,
  Tuesday at eleven, and Wednesday at two. Which one works best for you?
tts: {provider: espeak-ng}
turn_handling:
  interruption: {mode: adaptive, detector: heuristic, false_interruption_timeout: 0.6}
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# -- the gateway process --------------------------------------------------------------------------


async def serve(port_file: Path, agent: Path, echo: bool) -> None:
    from gateway.calls import CallEnded, CallObserver, CallSessions, CallTransport, InboundFrame
    from gateway.config.schema import GatewayConfig, HttpConfig
    from gateway.edges import mediastream
    from gateway.runtime import GatewayRuntime

    config = GatewayConfig(default_agent=str(agent)).model_copy(
        update={"http": HttpConfig.model_construct(host="127.0.0.1", port=0)}
    )
    runtime = GatewayRuntime(config)
    sessions: CallSessions = runtime.runner
    if echo:
        real = runtime.runner

        class EchoSessions:
            route = staticmethod(real.route)
            choose = staticmethod(real.choose)

            async def __call__(self, transport: CallTransport, observer: CallObserver | None = None) -> None:
                async for event in transport.events():
                    if isinstance(event, InboundFrame):
                        transport.play(event.pcm)
                    elif isinstance(event, CallEnded):
                        return

        sessions = EchoSessions()
    else:
        runtime.runner.detectors(runtime.runner.agent(str(agent)))  # load models before measuring
    http = runtime.http_service()
    mediastream.install(http.app, sessions, mediastream.MediaStreamSettings())
    await http.start()
    port_file.write_text(str(http.port))
    await asyncio.Event().wait()


# -- the load -------------------------------------------------------------------------------------


def caller_audio(seconds: float) -> np.ndarray:
    from audio_fixtures import espeak, place

    return place(
        seconds,
        [
            (1.0, espeak("mm-hmm", voice="en-gb")),
            (seconds / 2, espeak("hold on, I need a morning slot", voice="en-gb")),
        ],
    )


async def load(port: int, calls: int, seconds: float, dialect: str) -> list:
    from carrier_simulator import CarrierSimulator

    audio = caller_audio(seconds)
    sims = [CarrierSimulator(f"ws://127.0.0.1:{port}/media/{dialect}", dialect, audio) for _ in range(calls)]
    return list(await asyncio.gather(*(s.run() for s in sims)))


def start_gateway(tmp: Path, echo: bool) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp / f"port-{echo}"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), "--agent", str(tmp / "agent.yaml")]
        + (["--echo"] if echo else []),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the gateway process did not start")
        time.sleep(0.05)  # polling a subprocess's start-up file
    return proc, int(port_file.read_text())


def measure(tmp: Path, echo: bool, calls: int, seconds: float, dialect: str) -> dict[str, float]:
    proc, port = start_gateway(tmp, echo)
    try:
        idle_from, idle_cpu = time.monotonic(), cpu_seconds(proc.pid)
        time.sleep(1.0)
        idle_rate = (cpu_seconds(proc.pid) - idle_cpu) / (time.monotonic() - idle_from)
        t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
        results = asyncio.run(load(port, calls, seconds, dialect))
        wall, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - c0
    finally:
        proc.terminate()
        proc.wait()
    busy = max(0.0, cpu - idle_rate * wall)
    per_call = busy / wall / calls * 100  # % of one core per call
    late = np.array([x for r in results for x in r.frame_lateness_ms] or [0.0])
    delay = np.array([x for r in results for x in r.agent_delay_ms] or [0.0])
    failed = sum(1 for r in results if r.close_code != 1000)
    return {
        "per_call": per_call,
        "per_core": 100 / per_call if per_call > 0 else float("inf"),
        "late_p99": float(np.percentile(late, 99)) if late.size else 0.0,
        "late_max": float(late.max()),
        "late_n": float(sum(len(r.frame_lateness_ms) for r in results)),
        "delay_p50": float(np.percentile(delay, 50)),
        "delay_p99": float(np.percentile(delay, 99)),
        "delay_max": float(delay.max()),
        "failed": float(failed),
    }


def sip_figure() -> str:
    path = REPO / "bench" / "out" / "bench_sip.txt"
    if not path.exists():
        return "SIP: no figure in bench/out/bench_sip.txt (run bench/bench_sip.py to compare)"
    lines = [line for line in path.read_text().splitlines() if "per call" in line.lower() or "|" in line]
    return "SIP (bench/out/bench_sip.txt):\n" + "\n".join(lines[:12])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dialect", default="twilio")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve), Path(args.agent), args.echo))
        return 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "agent.yaml").write_text(AGENT)
        print(f"media streams ({args.dialect}), {args.seconds:g} s calls, {os.cpu_count()} CPUs (shared)")
        header = (
            f"{'calls':>5} {'gateway':>8} {'CPU/call':>9} {'calls/core':>10} {'x echo':>7} "
            f"{'send late p99/max ms':>21} {'agent delay p50/p99/max ms':>27} {'failed':>6}"
        )
        print(header)
        print("-" * len(header))
        for n in [int(x) for x in args.calls.split(",")]:
            rows = {
                mode: measure(tmp, mode == "echo", n, args.seconds, args.dialect)
                for mode in ("echo", "session")
            }
            for mode in ("echo", "session"):
                r = rows[mode]
                ratio = (
                    r["per_call"] / rows["echo"]["per_call"] if rows["echo"]["per_call"] > 0 else float("nan")
                )
                delay = (
                    f"{r['delay_p50']:.1f}/{r['delay_p99']:.1f}/{r['delay_max']:.1f}"
                    if mode == "session"
                    else "-"
                )
                print(
                    f"{n:>5} {mode:>8} {r['per_call']:>8.2f}% {r['per_core']:>10.1f} {ratio:>7.2f} "
                    f"{r['late_p99']:>10.1f}/{r['late_max']:<10.1f} {delay:>27} {int(r['failed']):>6}"
                )
        print()
        print(sip_figure())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
