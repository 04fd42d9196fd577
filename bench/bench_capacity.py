"""Capacity of one machine: concurrent SIP calls through the Kamailio front, the whole runtime.

    nice -n 10 .venv/bin/python bench/bench_capacity.py [--light 1,16,32,64,100] [--dental 1,4,8,16]
        [--seconds 15] [--set sip.session_hosts=2] [--variant before=sip.session_hosts=0]

For each agent and each N: a fresh `gateway serve` (metrics database in SQLite, AgentRunner, HTTP),
sipp placing N calls at once through the front (PCMU, real RTP played from a capture of a caller
who talks over the agent), then the gateway is stopped (drain, writer flush) and its log and
database are read. Agents:

- `light`: an espeak-ng greeting (about 7 s) with adaptive barge-in and no STT or LLM; the caller
  says "uh-huh" (a backchannel) and then "actually, wait" (an interruption) over it.
- `dental`: config/agents/dental.yaml (pocketsphinx STT with its phrase model, the scripted LLM,
  espeak-ng, the demo appointment service), with the demo caller of `gateway demo` (33 s).

Columns: answered / refused (503) calls; CPU per call in % of one core for the whole gateway
process tree (front, workers, session hosts, database process), idle cost subtracted; frames the
edge dropped (workers + hosts); p99 frame lateness (the worst call's p99 of how late its session
took its frames against the call's media clock, host log); barge-in verdicts per call (interruption
and backchannel rows) and the p95 decision latency (the detector's onset-to-verdict delay on the
call's timeline plus that call's p99 frame lateness: the wall-clock delay a caller meets), against
the single call of the same agent in the same run; reply latency p50/p95 (end of caller speech to
first agent audio, turns table); peak RSS of the process tree. Each `--variant NAME=KEY=VALUE,...`
runs every N again with those overrides (e.g. the old single-host process model), so a before and
after come from the same run on the same (shared, noisy) machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.audio.wav import write_wav  # noqa: E402
from gateway.edges.sip.pcap import wav_to_pcap  # noqa: E402
from gateway.edges.sip.ports import free_port  # noqa: E402
from tests.sip_fixtures import kill_group  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RATE = 8000

LIGHT_AGENT = """\
agent: light
greeting: "Thank you for calling Bright Smile Dental. We are open Monday to Friday, from nine to five.
  How can I help you today?"
tts: {provider: espeak-ng, voice: en-us, rate: 165}
turn_handling:
  interruption: {mode: adaptive}
"""
LIGHT_CALLER = ((2.2, "Uh-huh."), (4.6, "Actually, wait, I have a question."))
DENTAL_SECONDS = 33.0


# -- caller audio ---------------------------------------------------------------------------------
def render_caller(script: tuple[tuple[float, str], ...], seconds: float, path: Path) -> None:
    """The caller's side as an 8 kHz WAV: each line spoken (Piper, else espeak-ng) at its time."""
    from gateway.backends.base import TTS
    from gateway.backends.registry import build_tts
    from gateway.config.schema import ProviderConfig

    try:
        tts: TTS = build_tts(ProviderConfig(provider="piper"))
    except Exception:
        tts = build_tts(ProviderConfig.model_validate({"provider": "espeak-ng", "voice": "en-gb"}))

    async def render() -> np.ndarray:
        track = np.zeros(int(seconds * RATE), dtype=np.int32)
        for start, text in script:
            pcm = np.concatenate([c.pcm async for c in tts.synthesize(text, sample_rate=RATE)])
            i = int(start * RATE)
            track[i : i + len(pcm)] += pcm[: len(track) - i].astype(np.int32)
        return np.clip(track, -32768, 32767).astype(np.int16)

    write_wav(path, asyncio.run(render()), RATE)


# -- the process tree -----------------------------------------------------------------------------
def tree(root: int) -> list[Path]:
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(child for child, ppid in parent.items() if ppid == pid)
    return [Path(f"/proc/{pid}") for pid in pids]


def tree_usage(root: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of `root` and its descendants alive now."""
    cpu, rss = 0.0, 0.0
    for proc in tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (proc / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            rss += int(fields[21]) * PAGE / 2**20
    return cpu, rss


class Sampler(threading.Thread):
    """Peak RSS of the tree while the calls run (one sample a second)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_rss = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.peak_rss = max(self.peak_rss, tree_usage(self.root)[1])


# -- one run --------------------------------------------------------------------------------------
@dataclass
class Run:
    agent: str
    variant: str
    calls: int
    answered: int = 0
    refused: int = 0
    failed: int = 0
    cpu_per_call: float = 0.0
    frames: int = 0
    dropped: int = 0
    lateness_p99: list[float] = field(default_factory=list)  # per call, ms
    verdicts: int = 0  # interruption + backchannel rows
    kinds: dict[str, list[str]] = field(default_factory=dict)  # verdict kinds by SIP Call-ID
    fallbacks: int = 0
    decision_ms: list[float] = field(default_factory=list)  # detection delay + call's p99 lateness
    replies_ms: list[float] = field(default_factory=list)
    peak_rss: float = 0.0


def sipp(
    work: Path, port: int, service: str, calls: int, seconds: float, errors: Path
) -> subprocess.CompletedProcess[str]:
    """sipp from `work` (it holds caller.pcap); what went wrong with a call goes to `errors`."""
    errors.unlink(missing_ok=True)
    cmd = [
        "sipp", "-sf", str(REPO / "sip" / "scenarios" / "uac_pcap.xml"),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0", "-nostdin", "-s", service,
        "-key", "pt", "0", "-key", "codec", "PCMU",
        "-d", str(int(seconds * 1000)), "-m", str(calls), "-l", str(calls), "-r", str(max(calls, 1)),
        "-timeout", str(int(seconds + 60)), "-trace_err", "-error_file", str(errors), f"127.0.0.1:{port}",
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)


def sipp_counter(out: str, name: str) -> int:
    m = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", out)
    return int(m[-1]) if m else 0


def run_level(
    work: Path, agent: str, agent_file: Path, calls: int, seconds: float, overrides: list[str], variant: str
) -> Run:
    run = Run(agent, variant, calls)
    level = work / f"{agent}-{variant}-{calls}"
    level.mkdir()
    db = level / "gateway.db"
    upgrade = [sys.executable, "-m", "gateway", "db", "upgrade", "--db", f"sqlite:///{db}"]
    subprocess.run(upgrade, check=True, capture_output=True, cwd=REPO)
    config = level / "gateway.yaml"
    config.write_text(
        f"database: {{url: 'sqlite:///{db}', spool_dir: '{level / 'spool'}'}}\n"
        f"routes: [{{match: {agent}, agent: '{agent_file}'}}]\n"
        "http: {port: 0}\nsip: {rate_limit: null}\n"
    )
    workers = -(-calls // 4) + 1  # 4 calls per pjsua2 worker, one to spare
    workers += workers % 2  # even: the same number of workers for each of two session hosts
    port = free_port()
    sets = [arg for o in overrides for arg in ("--set", o)]
    err = level / "serve.err"
    with open(err, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-v", "serve", "--config", str(config), "--sip-port", str(port),
             "--workers", str(workers), "--run-dir", str(level / "run"), "--drain-timeout", "5", *sets],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        assert serve.stdout is not None
        if not serve.stdout.readline().startswith(b"SERVING"):
            raise RuntimeError("gateway serve did not start:\n" + err.read_text()[-3000:])
        c0, t0 = tree_usage(serve.pid)[0], time.monotonic()
        time.sleep(2.0)  # the idle sample: a measurement window, not synchronisation
        idle = (tree_usage(serve.pid)[0] - c0) / (time.monotonic() - t0)
        sampler = Sampler(serve.pid)
        sampler.start()
        c0, t0 = tree_usage(serve.pid)[0], time.monotonic()
        res = sipp(work, port, agent, calls, seconds, level / "sipp_errors.log")
        busy, elapsed = tree_usage(serve.pid)[0] - c0, time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        run.peak_rss = sampler.peak_rss
        run.answered = sipp_counter(res.stdout, "Successful call")
        run.failed = sipp_counter(res.stdout, "Failed call")
        errors = level / "sipp_errors.log"
        run.refused = errors.read_text(errors="replace").count("SIP/2.0 503") if errors.exists() else 0
        run.cpu_per_call = (busy - idle * elapsed) / max(run.answered, 1) / seconds * 100
        os.kill(serve.pid, signal.SIGTERM)  # drain, flush the metrics writer
        with contextlib.suppress(subprocess.TimeoutExpired):
            serve.wait(30)
    finally:
        kill_group(serve)
    text = err.read_text(errors="replace")
    late_by_call: dict[str, float] = {}
    for m in re.finditer(
        r"call (\S+) ended: \S+; frames (\d+), dropped in worker (\d+), dropped here (\d+)"
        r"(?:, lateness p50 \d+ ms p99 (\d+) ms)?",
        text,
    ):
        run.frames += int(m[2])
        run.dropped += int(m[3]) + int(m[4])
        late_by_call[m[1]] = float(m[5] or 0)
    run.lateness_p99 = list(late_by_call.values())
    with contextlib.closing(sqlite3.connect(db)) as con:
        for call_id, kind, mode, delay in con.execute(
            "SELECT c.call_id, i.kind, i.mode, i.detection_delay_ms FROM interruption_events i "
            "JOIN calls c ON c.id = i.call_id WHERE i.kind IN ('interruption', 'backchannel')"
        ):
            run.verdicts += 1
            run.kinds.setdefault(call_id, []).append(kind)
            run.fallbacks += mode == "fallback"
            if delay is not None:
                run.decision_ms.append(float(delay) + late_by_call.get(call_id, 0.0))
        run.replies_ms = [
            float(r) for (r,) in con.execute("SELECT response_latency_ms FROM turns") if r is not None
        ]
    return run


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--light", default="1,16,32,64", help="concurrent calls for the light agent ('' skips it)")
    p.add_argument("--dental", default="1,4,8,16", help="concurrent calls for the dental agent ('' skips it)")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the light agent's calls")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument(
        "--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
        help="also run every level with these overrides (e.g. before=sip.session_hosts=0)",
    )  # fmt: skip
    p.add_argument("--keep", type=Path, default=None, help="keep logs and databases in this directory")
    a = p.parse_args()
    variants: list[tuple[str, list[str]]] = [("now", list(a.set))]
    for v in a.variant:
        name, _, sets = v.partition("=")
        variants.append((name, [*a.set, *[s for s in sets.split(",") if s]]))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = Path(tmp) if a.keep is None else a.keep
        work.mkdir(parents=True, exist_ok=True)
        plans: list[tuple[str, Path, list[int], float]] = []
        if a.light:
            light = work / "light.yaml"
            light.write_text(LIGHT_AGENT)
            render_caller(LIGHT_CALLER, a.seconds + 1, work / "light.wav")
            plans.append(("light", light, [int(x) for x in a.light.split(",")], a.seconds))
        tools: subprocess.Popen[bytes] | None = None
        if a.dental:
            from gateway.demo import CALLER_SCRIPT

            tools_port = free_port()  # free for TCP too
            dental = work / "dental.yaml"
            text = (REPO / "config/agents/dental.yaml").read_text()
            dental.write_text(text.replace("127.0.0.1:8090", f"127.0.0.1:{tools_port}"))
            render_caller(CALLER_SCRIPT, DENTAL_SECONDS, work / "dental.wav")
            tools = subprocess.Popen(
                [sys.executable, "-m", "gateway", "appointments", "--port", str(tools_port)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            plans.append(("dental", dental, [int(x) for x in a.dental.split(",")], DENTAL_SECONDS - 1))
        print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        try:
            for agent, agent_file, levels, seconds in plans:
                wav_to_pcap(work / f"{agent}.wav", work / "caller.pcap", "PCMU")
                for name, overrides in variants:
                    for n in levels:
                        run = run_level(work, agent, agent_file, n, seconds, overrides, name)
                        runs.append(run)
                        print(f"  {agent} {name} {n}: {run.answered} answered", file=sys.stderr, flush=True)
        finally:
            if tools is not None:
                kill_group(tools)
    print_table(runs)
    return 0


def print_table(runs: list[Run]) -> None:
    print(
        "\n| agent | variant | calls | answered | refused | CPU/call | frames | dropped | lateness p99 "
        "| verdicts/call (1 call) | decision p95 (vs 1 call) | reply p50 / p95 (p95 vs 1 call) | RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base: dict[str, Run] = {}
    for r in runs:
        if r.calls == 1 and r.agent not in base:
            base[r.agent] = r
        b = base.get(r.agent, r)
        per_call = r.verdicts / max(r.answered, 1)
        b_per_call = b.verdicts / max(b.answered, 1)
        dec, b_dec = pct(r.decision_ms, 95), pct(b.decision_ms, 95)
        rep50, rep95, b_rep95 = pct(r.replies_ms, 50), pct(r.replies_ms, 95), pct(b.replies_ms, 95)
        late = max(r.lateness_p99, default=float("nan"))
        fallback = f", {r.fallbacks} fallback" if r.fallbacks else ""
        print(
            f"| {r.agent} | {r.variant} | {r.calls} | {r.answered} | {r.refused} | {r.cpu_per_call:.2f} % "
            f"| {r.frames} | {r.dropped} | {late:.0f} ms | {per_call:.2f} ({b_per_call:.2f}){fallback} "
            f"| {dec:.0f} ms ({dec - b_dec:+.0f} ms) "
            f"| {rep50:.0f} / {rep95:.0f} ms ({rep95 / b_rep95 if b_rep95 else float('nan'):.2f}x) "
            f"| {r.peak_rss:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
