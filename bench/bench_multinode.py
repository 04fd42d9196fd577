"""Several nodes behind the front: how calls spread, and what a node's death costs (needs root).

    python bench/bench_multinode.py [--spread-calls 40] [--failover-calls 40]

The topology of tests/test_multinode_netns.py: `gateway front` and two `gateway serve --role node`,
each in its own network namespace, one PostgreSQL, sipp on the bridge.

1. Spread: calls through the front with both nodes up; calls per node, from `calls.instance`.
2. Failover: calls at a steady rate; a few seconds in, node2's whole process group is killed
   (SIGKILL). Call set-up time (INVITE sent to 200 received, from sipp's message trace) before the
   kill is the baseline; the calls set up in the first seconds after it (some are first sent to the
   dead node and fail over after `--node-timeout`) and the later ones are compared with it. Also:
   calls that failed, and the time from the kill until the survivor has closed node2's calls as
   `node_lost`.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from gateway.metrics.nodes import NODE_LOST  # noqa: E402
from tests.conftest import PG_ADMIN_URL  # noqa: E402
from tests.test_multinode_netns import Topology, _kill_group, make_topology  # noqa: E402

_BLOCK = re.compile(
    r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(UDP message (sent|received).*?)(?=^-{10,}|\Z)",
    re.M | re.S,
)


def setup_times(log: Path) -> dict[str, tuple[float, float | None]]:
    """Per Call-ID: (INVITE first sent, epoch s; set-up time in s, or None when never answered)."""
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    for stamp, body, direction in _BLOCK.findall(log.read_text(errors="replace")):
        t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        call = re.search(r"^Call-ID:\s*(\S+)", body, re.M | re.I)
        cseq = re.search(r"^CSeq:\s*1 INVITE", body, re.M | re.I)
        if not call or not cseq:
            continue
        cid = call.group(1)
        lines = body.split("\n")
        first = next((ln for ln in lines[1:] if ln.strip()), "")
        if direction == "sent" and first.startswith("INVITE") and cid not in sent:
            sent[cid] = t
        elif direction == "received" and first.startswith("SIP/2.0 200") and cid not in answered:
            answered[cid] = t
    return {cid: (t0, (answered[cid] - t0) if cid in answered else None) for cid, t0 in sent.items()}


def spread(topo: Topology, calls: int) -> dict[str, int]:
    proc = topo.sipp("spread", calls=calls, concurrency=8, rate=8, hold_ms=1000)
    proc.communicate(timeout=calls * 2 + 60)
    counts: dict[str, int] = {}
    for rows in topo.rows().values():
        counts[rows[0].instance] = counts.get(rows[0].instance, 0) + 1
    return counts


def failover(
    topo: Topology, calls: int, kill_after_s: float
) -> tuple[list[tuple[str, list[float]]], int, float, int]:
    proc = topo.sipp("failover", calls=calls, concurrency=12, rate=4, hold_ms=1000)
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.time())
        _kill_group(topo.nodes["node2"], signal.SIGKILL)

    timer = threading.Timer(kill_after_s, kill)
    timer.start()
    t_kill = time.monotonic() + kill_after_s
    while time.monotonic() < t_kill or not killed:
        time.sleep(0.02)
    t0 = time.monotonic()

    def node2_closed() -> bool:
        return all(r.ended_at for rs in topo.rows().values() for r in rs if r.instance == "node2")

    topo.wait_for("node2's calls closed", node2_closed, 60)
    closed_after = time.monotonic() - t0
    lost = sum(1 for rs in topo.rows().values() for r in rs if r.end_reason == NODE_LOST)
    proc.communicate(timeout=calls + 120)
    times = setup_times(topo.work / "sipp-failover" / "messages.log")
    kill_at = killed[0]
    groups: dict[str, list[float]] = {"before the kill": [], "0-3 s after": [], "later": []}
    failed = 0
    for sent_at, setup in times.values():
        if setup is None:
            failed += 1
            continue
        key = "before the kill" if sent_at < kill_at else "0-3 s after" if sent_at < kill_at + 3 else "later"
        groups[key].append(setup * 1000)
    return list(groups.items()), failed, closed_after, lost


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spread-calls", type=int, default=40)
    p.add_argument("--failover-calls", type=int, default=40)
    p.add_argument("--kill-after", type=float, default=4.0, help="seconds into the failover run")
    a = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-multinode-") as tmp,
        make_topology(PG_ADMIN_URL, Path(tmp)) as topo,
    ):
        topo.start_node("node1")
        topo.start_node("node2")
        topo.start_front()
        counts = spread(topo, a.spread_calls)
        groups, failed, closed_after, lost = failover(topo, a.failover_calls, a.kill_after)

    total = sum(counts.values())
    print(f"\nSpread: {total} calls through the front, 8 at a time, both nodes up\n")
    print(f"{'node':<8} {'calls':>6} {'share':>7} {'vs even':>8}")
    for node in sorted(counts):
        share = counts[node] / total
        print(f"{node:<8} {counts[node]:>6} {share:>7.1%} {share * len(counts):>7.2f}x")

    print(f"\nFailover: {a.failover_calls} calls at 4/s, node2 killed (SIGKILL) {a.kill_after:g} s in\n")
    base = statistics.median(groups[0][1]) if groups[0][1] else float("nan")
    print(f"{'calls set up':<16} {'n':>4} {'median ms':>10} {'max ms':>8} {'median vs before':>17}")
    for name, values in groups:
        if not values:
            print(f"{name:<16} {0:>4}")
            continue
        med = statistics.median(values)
        print(f"{name:<16} {len(values):>4} {med:>10.0f} {max(values):>8.0f} {med / base:>16.2f}x")
    print(f"\ncalls never answered: {failed}")
    print(f"node2's {lost} open calls closed as node_lost by node1: {closed_after:.1f} s after the kill")
    print("(timings on a shared 2-core machine: noisy)")


if __name__ == "__main__":
    main()
