"""Soak: many short SIP calls through the front; the gateway must not keep memory per call.

    python bench/bench_soak.py [--calls 1000] [--concurrency 24] [--seconds 1.0]

`gateway serve` runs its whole runtime (metrics database, AgentRunner, HTTP) with one light agent
(a spoken greeting, VAD and barge-in, no STT or LLM): sipp places the calls through the Kamailio
front, `--concurrency` at a time, in batches. After each batch the RSS of the main process and its
session hosts (where the calls' sessions run) is read;
the first batch is the warm-up (models, pools, allocator arenas), and the RSS after the last batch
must stay within 10 % of the RSS after it. Issue #14 measured 400 calls, 24 at a time, growing
390 -> 516 -> 642 -> 768 MB (about 1.26 MB per call kept for good).

`tests/test_soak.py` runs a smaller soak (200 calls) in CI and fails on growth.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from gateway.edges.sip.ports import free_port  # noqa: E402
from tests.sip_fixtures import kill_group, run_sipp  # noqa: E402

AGENT = """\
agent: soak
greeting: "Thank you for calling. How can I help?"
tts: {provider: espeak-ng, voice: en-us}
turn_handling:
  interruption: {mode: adaptive}
"""
ALLOWED_GROWTH = 0.10


@dataclass
class Soak:
    calls: list[int]  # calls done after each batch
    rss_mb: list[float]  # main-process RSS after each batch
    failed: int

    @property
    def growth(self) -> float:
        """RSS after the last batch over RSS after the warm-up batch, minus 1."""
        return self.rss_mb[-1] / self.rss_mb[0] - 1.0

    @property
    def kb_per_call(self) -> float:
        return (self.rss_mb[-1] - self.rss_mb[0]) * 1024 / max(self.calls[-1] - self.calls[0], 1)


def _own_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_mb(pid: int) -> float:
    """RSS of `gateway serve` plus its session-host processes (where the SIP calls' sessions run)."""
    total = _own_rss_mb(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid and b"session-host" in cmdline:
            total += _own_rss_mb(int(entry.name))
    return total


def soak(work: Path, calls: int, concurrency: int, seconds: float, batches: int = 5) -> Soak:
    """`calls` calls of `seconds` through a fresh `gateway serve`, in `batches` batches."""
    agent = work / "soak.yaml"
    agent.write_text(AGENT)
    config = work / "gateway.yaml"
    db = work / "soak.db"
    config.write_text(
        f"database: {{url: 'sqlite:///{db}', spool_dir: '{work / 'spool'}'}}\n"
        f"routes: [{{match: soak, agent: '{agent}'}}]\n"
        "http: {port: 0}\nsip: {rate_limit: null}\n"
    )
    gateway = [sys.executable, "-m", "gateway"]
    subprocess.run([*gateway, "db", "upgrade", "--db", f"sqlite:///{db}"], check=True, capture_output=True)
    port = free_port()
    workers = -(-concurrency // 4) + 1  # 4 calls per pjsua2 worker, and one to spare
    with open(work / "serve.err", "wb") as err:
        serve = subprocess.Popen(
            [*gateway, "serve", "--config", str(config), "--sip-port", str(port), "--workers", str(workers),
             "--run-dir", str(work / "run"), "--drain-timeout", "5"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=err, start_new_session=True,
        )  # fmt: skip
    try:
        assert serve.stdout is not None
        if not serve.stdout.readline().startswith(b"SERVING"):
            raise RuntimeError("gateway serve did not start:\n" + (work / "serve.err").read_text()[-3000:])
        per_batch = max(1, calls // batches)
        done, failed = 0, 0
        result = Soak([], [], 0)
        for _ in range(batches):
            sipp_args = [
                "-s", "soak", "-m", str(per_batch), "-l", str(concurrency), "-r", str(concurrency),
                "-key", "pt", "0", "-key", "codec", "PCMU", "-d", str(int(seconds * 1000)), "-rtp_echo",
            ]  # fmt: skip
            res = run_sipp(work, port, "uac_echo.xml", *sipp_args, timeout=per_batch * (seconds + 2) + 60)
            failed += _failed_calls(res.stdout) if res.returncode else 0
            done += per_batch
            result.calls.append(done)
            result.rss_mb.append(rss_mb(serve.pid))
        result.failed = failed
        return result
    finally:
        kill_group(serve)


def _failed_calls(sipp_stdout: str) -> int:
    for line in sipp_stdout.splitlines():
        if "Failed call" in line:
            digits = [int(x) for x in line.replace("|", " ").split() if x.isdigit()]
            return digits[-1] if digits else 1
    return 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=24)
    p.add_argument("--seconds", type=float, default=1.0, help="length of each call")
    p.add_argument("--batches", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        result = soak(Path(tmp), a.calls, a.concurrency, a.seconds, a.batches)
    print(
        f"\n{a.calls} calls of {a.seconds:g} s, {a.concurrency} at a time; main-process RSS after a batch\n"
    )
    print(f"{'calls':>7} {'RSS MB':>8} {'vs warm-up':>11}")
    for calls, rss in zip(result.calls, result.rss_mb, strict=True):
        print(f"{calls:>7} {rss:>8.1f} {rss / result.rss_mb[0]:>10.3f}x")
    verdict = "flat" if result.growth <= ALLOWED_GROWTH else "GROWING"
    print(
        f"\ngrowth after warm-up: {result.growth * 100:+.1f} % ({result.kb_per_call:.0f} kB/call), "
        f"failed calls: {result.failed}: {verdict} (limit {ALLOWED_GROWTH * 100:.0f} %)"
    )
    sys.exit(0 if result.growth <= ALLOWED_GROWTH else 1)


if __name__ == "__main__":
    main()
