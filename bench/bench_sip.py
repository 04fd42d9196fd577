"""Load on the SIP edge with sipp through the Kamailio front, against a bare pjsua2 worker in the same run.

    .venv/bin/python bench/bench_sip.py [--calls 4,8] [--seconds 10] [--workers 2]

For each N in --calls: N concurrent sipp calls (PCMU, RTP from a capture, the whole call long) through
`gateway serve` (front + workers + session host running a session that only consumes frames). Prints
calls answered / failed, frames the edge dropped, and CPU per call in % of one core for the whole
gateway process tree (front + workers + host), idle cost subtracted. The baseline, measured in the same
run, is a bare pjsua2 worker (fast frame read, silence out, no link) taking min(N, 4) calls directly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.audio.wav import write_wav  # noqa: E402
from gateway.edges.sip.pcap import wav_to_pcap  # noqa: E402
from gateway.edges.sip.ports import free_port  # noqa: E402
from tests.sip_fixtures import bare_worker_command  # noqa: E402

SCENARIO = REPO / "sip" / "scenarios" / "uac_pcap.xml"
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of `root` and all its descendants alive now."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, ppid in parent.items() if ppid == pid)
    return total


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_sipp(cwd: Path, port: int, calls: int, seconds: float) -> tuple[int, int]:
    cmd = [
        "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0", "-nostdin",
        "-s", "bench", "-key", "pt", "0", "-key", "codec", "PCMU", "-d", str(int(seconds * 1000)),
        "-m", str(calls), "-l", str(calls), "-r", str(max(calls, 1)), "-timeout", str(int(seconds + 30)),
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False).stdout

    def counter(name: str) -> int:
        m = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", out)
        return int(m[-1]) if m else 0

    return counter("Successful call"), counter("Failed call")


def measure(root: int, cwd: Path, port: int, calls: int, seconds: float) -> tuple[int, int, float]:
    """(answered, failed, CPU % of a core per call), idle cost subtracted."""
    c0, t0 = tree_cpu(root), time.monotonic()
    time.sleep(2.0)  # idle sample: this is the measurement window, not synchronisation
    idle_rate = (tree_cpu(root) - c0) / (time.monotonic() - t0)
    c0, t0 = tree_cpu(root), time.monotonic()
    ok, failed = run_sipp(cwd, port, calls, seconds)
    busy = tree_cpu(root) - c0
    elapsed = time.monotonic() - t0
    per_call = (busy - idle_rate * elapsed) / max(ok, 1) / seconds * 100
    return ok, failed, per_call


def bare_worker(cwd: Path, calls: int, seconds: float) -> tuple[int, int, float]:
    port = free_port()
    proc = subprocess.Popen(
        bare_worker_command(port),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"READY")
        return measure(proc.pid, cwd, port, min(calls, 4), seconds)
    finally:
        kill_group(proc)


def gateway(cwd: Path, calls: int, seconds: float, workers: int) -> tuple[int, int, float, int, int]:
    port = free_port()
    err = cwd / "serve.err"
    with open(err, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-v", "serve", "--sip-port", str(port),
             "--workers", str(workers), "--session", "gateway.edges.sip.sessions:silent",
             "--set", "sip.rate_limit=null",
             "--drain-timeout", "2", "--run-dir", str(cwd / f"run{calls}")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"SERVING"), err.read_text()
        ok, failed, per_call = measure(proc.pid, cwd, port, calls, seconds)
    finally:
        kill_group(proc)
    ends = re.findall(r"frames (\d+), dropped in worker (\d+), dropped here (\d+)", err.read_text())
    frames = sum(int(f) for f, _, _ in ends)
    dropped = sum(int(a) + int(b) for _, a, b in ends)
    return ok, failed, per_call, frames, dropped


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", default="4,8", help="comma-separated concurrent call counts")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each call")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        cwd = Path(tmp)
        rate = 8000
        t = np.arange(int(rate * (a.seconds + 1))) / rate
        speech = (np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) * 8000).astype(np.int16)
        write_wav(cwd / "caller.wav", speech, rate)
        wav_to_pcap(cwd / "caller.wav", cwd / "caller.pcap", "PCMU")
        print(f"{a.seconds:.0f} s calls, PCMU, {a.workers} workers, {os.cpu_count()} CPUs\n")
        print("| calls | answered | failed | frames | dropped | CPU/call gateway | CPU/call bare | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in (int(x) for x in a.calls.split(",")):
            b_ok, _, bare = bare_worker(cwd, n, a.seconds)
            ok, failed, full, frames, dropped = gateway(cwd, n, a.seconds, a.workers)
            ratio = full / bare if bare > 0 else float("nan")
            print(
                f"| {n} | {ok} | {failed} | {frames} | {dropped} | {full:.2f} % | {bare:.2f} % ({b_ok} calls)"
                f" | {ratio:.1f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
