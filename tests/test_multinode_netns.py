"""Several gateway nodes as separate hosts on this machine: a front and two nodes, each in its own
network namespace (`ip netns`, veth pairs on a bridge), one PostgreSQL, sipp load through the front.

    caller (sipp, on the bridge 10.a.b.1) ──SIP──► front  10.a.b.10  (`gateway front`)
                                                     ├─► node1 10.a.b.11 (`gateway serve --role node`)
                                                     └─► node2 10.a.b.12
    every node ──► PostgreSQL (127.0.0.1:5432 of this host, through a forwarder on 10.a.b.1)

What a Docker engine would give the compose file, built from what this machine has (no engine runs
here, and base images cannot be pulled). The run, 20 calls:

1. 6 calls, both nodes up; when all 6 are answered and recorded, node2 is killed with SIGKILL (its
   whole process group: a machine that died). Its calls are cut; node1's sweeper closes them as
   `node_lost` within seconds.
2. 6 calls after the kill: every one succeeds, on node1.
3. node2 is restarted under its name; 8 calls, during which node1 gets SIGTERM: its calls in
   progress finish (drain), new calls go to node2; every one succeeds.

Then: every call that sipp saw answered has exactly one row, ended; node2's cut calls are
`node_lost`, closed by node1 (before node2's restart), never twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, make_url, select

from bench.bench_soak import AGENT as SOAK_AGENT
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.nodes import NODE_LOST
from gateway.metrics.tables import Call, SpeechSegment
from tests.conftest import create_pg_database, drop_pg_database

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "sip" / "scenarios" / "uac_echo.xml"
AGENT = SOAK_AGENT  # the light agent of the soak: a spoken greeting, VAD and barge-in, no STT or LLM

pytestmark = [pytest.mark.slow]


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def _free_subnet() -> ipaddress.IPv4Network:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    nets = [ipaddress.ip_interface(m).network for m in re.findall(r"inet (\S+)", used)]
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{random.randint(160, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(n) for n in nets):
            return net
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


@dataclass
class Hosts:
    """A bridge on this host (address .1) and one namespace per host, each with a veth on the bridge."""

    net: ipaddress.IPv4Network
    tag: str
    namespaces: dict[str, str] = field(default_factory=dict)  # name -> address

    @property
    def bridge(self) -> str:
        return f"gwb{self.tag}"

    @property
    def host_address(self) -> str:
        return str(self.net[1])

    def create(self, hosts: dict[str, int]) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_address}/{self.net.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (name, last) in enumerate(hosts.items()):
            ns, outer, inner = f"gw{self.tag}{name}", f"gv{self.tag}{i}", f"gp{self.tag}{i}"
            address = str(self.net[last])
            _ip("netns", "add", ns)
            self.namespaces[name] = address
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", self.bridge, "up")
            _ip("addr", "add", f"{address}/{self.net.prefixlen}", "dev", inner, ns=ns)
            _ip("link", "set", inner, "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)

    def ns(self, name: str) -> str:
        return f"gw{self.tag}{name}"

    def destroy(self) -> None:
        for name in self.namespaces:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "delete", self.ns(name))  # its veth end goes with it
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "delete", self.bridge)


class TcpForwarder:
    """PostgreSQL for the namespaces: listens on the bridge address, forwards to the test server (the
    local one listens on loopback only, with trust for 127.0.0.1)."""

    def __init__(self, listen: str, target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.listen, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _start(cmd: list[str], ns: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})),
        )


def _wait_serving(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    assert proc.stdout is not None
    line: list[bytes] = []

    def read() -> None:
        line.append(proc.stdout.readline())  # type: ignore[union-attr]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].startswith(b"SERVING"):
        raise RuntimeError(f"{proc.args} did not start:\n{log.read_text()[-3000:]}")


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@dataclass
class Topology:
    hosts: Hosts
    work: Path
    db_url: str  # as the namespaces reach it
    engine: Engine  # as this process reaches it
    front: subprocess.Popen[bytes] | None = None
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_node(self, name: str) -> None:
        address = self.hosts.namespaces[name]
        config = self.work / f"{name}.yaml"
        config.write_text(
            f"database: {{url: '{self.db_url}', spool_dir: '{self.work / name / 'spool'}', "
            "batch_interval: 0.2}\n"
            f"routes: [{{match: soak, agent: '{self.work / 'soak.yaml'}'}}]\n"
            f"http: {{host: {address}, port: 8080, metrics: {{allow: ['{self.hosts.net}']}}}}\n"
            f"sip: {{host: {address}, port: 5060, allow: ['{self.hosts.namespaces['front']}'], "
            "rate_limit: null, workers: 2, drain_timeout: 20}\n"
            "webrtc: {enabled: false}\nmediastream: {enabled: false}\n"
        )
        cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--role", "node",
               "--instance", name, "--run-dir", str(self.work / name / "run")]  # fmt: skip
        log = self.work / f"{name}.log"
        self.nodes[name] = _start(cmd, self.hosts.ns(name), log)
        _wait_serving(self.nodes[name], log)

    def start_front(self) -> None:
        nodes = [a for n, a in self.hosts.namespaces.items() if n.startswith("node")]
        cmd = [sys.executable, "-m", "gateway", "front", "--host", self.hosts.namespaces["front"],
               "--node-timeout", "1", "--ping-interval", "1",
               "--run-dir", str(self.work / "front")]  # fmt: skip
        for address in nodes:
            cmd += ["--node", address]
        log = self.work / "front.log"
        self.front = _start(cmd, self.hosts.ns("front"), log)
        _wait_serving(self.front, log)

    def stop(self) -> None:
        for proc in [*self.nodes.values(), *([self.front] if self.front else [])]:
            if proc.poll() is None:
                _kill_group(proc, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    proc.wait(5)

    def sipp(
        self, tag: str, calls: int, concurrency: int, rate: float, hold_ms: int
    ) -> subprocess.Popen[str]:
        """sipp on the bridge address, through the front; its message trace tells which calls were
        answered."""
        out = self.work / f"sipp-{tag}"
        out.mkdir()
        cmd = [
            "sipp", "-sf", str(SCENARIO), "-s", "soak", "-i", self.hosts.host_address,
            "-mi", self.hosts.host_address, "-p", "0", "-nostdin", "-m", str(calls), "-l", str(concurrency),
            "-r", str(rate), "-d", str(hold_ms), "-key", "pt", "0", "-key", "codec", "PCMU", "-rtp_echo",
            "-max_non_invite_retrans", "2", "-trace_msg", "-message_file", str(out / "messages.log"),
            "-cid_str", f"{tag}-%u-%p@sipp", f"{self.hosts.namespaces['front']}:5060",
        ]  # fmt: skip
        return subprocess.Popen(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def rows(self) -> dict[str, list[Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Call.call_id, Call.instance, Call.answered_at, Call.ended_at, Call.end_reason)
            )
            out: dict[str, list[Any]] = {}
            for r in rows:
                out.setdefault(r.call_id, []).append(r)
            return out

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> float:
        """Poll the database until `predicate` holds; returns the seconds it took."""
        t0 = time.monotonic()
        while not predicate():
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)
        return time.monotonic() - t0


def answered_call_ids(tag_dir: Path) -> set[str]:
    """Call-IDs to which sipp received a 200 OK to its INVITE."""
    text = (tag_dir / "messages.log").read_text(errors="replace")
    answered = set()
    for message in re.split(r"\n-{5,}.*\n", text):
        if re.search(r"^SIP/2\.0 200", message, re.M) and re.search(
            r"^CSeq:\s*1 INVITE", message, re.M | re.I
        ):
            found = re.search(r"^Call-ID:\s*(\S+)", message, re.M | re.I)
            if found:
                answered.add(found.group(1))
    return answered


def _finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@contextlib.contextmanager
def make_topology(postgres_admin_url: str, work: Path) -> Iterator[Topology]:
    """Bridge, namespaces (front, node1, node2), a fresh migrated database and its forwarder; all
    removed afterwards. Start the processes with `start_node` and `start_front`."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        raise RuntimeError("the multi-node topology makes network namespaces: it needs root and iproute2")
    hosts = Hosts(_free_subnet(), f"{random.randint(0, 0xFFF):03x}")
    url = create_pg_database(postgres_admin_url)
    forwarder: TcpForwarder | None = None
    engine = create_db_engine(url)
    topo: Topology | None = None
    try:
        hosts.create({"front": 10, "node1": 11, "node2": 12})
        schema.upgrade(url)
        parsed = make_url(url)
        forwarder = TcpForwarder(hosts.host_address, (parsed.host or "127.0.0.1", parsed.port or 5432))
        forwarder.start()
        ns_url = parsed.set(host=hosts.host_address, port=forwarder.port).render_as_string(
            hide_password=False
        )
        (work / "soak.yaml").write_text(AGENT)
        topo = Topology(hosts, work, ns_url, engine)
        yield topo
    finally:
        if topo is not None:
            topo.stop()
        if forwarder is not None:
            forwarder.stop()
        engine.dispose()
        hosts.destroy()
        drop_pg_database(postgres_admin_url, url)


@pytest.fixture
def topology(postgres_admin_url: str, tmp_path: Path) -> Iterator[Topology]:
    with make_topology(postgres_admin_url, tmp_path) as topo:
        yield topo


def test_drain_and_kill_lose_no_call_record(topology: Topology) -> None:
    topo = topology
    topo.start_node("node1")
    topo.start_node("node2")
    topo.start_front()

    # 1. both nodes up: 6 held calls; node2 dies with calls in progress
    first = topo.sipp("a", calls=6, concurrency=6, rate=6, hold_ms=8000)
    topo.wait_for(
        "6 answered calls recorded",
        lambda: sum(1 for rows in topo.rows().values() for r in rows if r.answered_at) >= 6,
    )
    on_node2 = {cid for cid, rows in topo.rows().items() if rows[0].instance == "node2"}
    assert 0 < len(on_node2) < 6, "the front spreads calls over both nodes"
    _kill_group(topo.nodes["node2"])
    killed_at = time.monotonic()
    topo.nodes["node2"].wait(10)

    # 2. 6 calls after the kill: all on node1; meanwhile node1's sweeper closes node2's calls
    second = topo.sipp("b", calls=6, concurrency=3, rate=3, hold_ms=1500)
    topo.wait_for(
        "node2's calls closed as node_lost",
        lambda: all(topo.rows()[cid][0].end_reason == NODE_LOST for cid in on_node2),
        timeout=30,
    )
    closed_after = time.monotonic() - killed_at
    code_b, out_b = _finish(second)
    assert code_b == 0, out_b[-2000:]  # sipp exits 0 only when every call succeeded
    _, out_a = _finish(first)

    # 3. node2 back under its name; node1 drained in the middle of 8 calls
    topo.start_node("node2")  # the front re-activates it at its next OPTIONS probe
    third = topo.sipp("c", calls=8, concurrency=4, rate=4, hold_ms=3000)
    before = set(topo.rows())
    topo.wait_for(
        "a call of the last batch on node1",
        lambda: any(rows[0].instance == "node1" for cid, rows in topo.rows().items() if cid not in before),
    )
    _kill_group(topo.nodes["node1"], signal.SIGTERM)
    code_c, out_c = _finish(third)
    assert code_c == 0, out_c[-2000:]
    assert topo.nodes["node1"].wait(40) == 0  # drained and exited cleanly

    answered = set()
    for tag in ("a", "b", "c"):
        answered |= answered_call_ids(topo.work / f"sipp-{tag}")
    assert len(answered) == 20, (len(answered), out_a[-1500:])
    rows = topo.rows()
    topo.wait_for("every row ended", lambda: all(r.ended_at for rs in topo.rows().values() for r in rs), 30)
    rows = topo.rows()
    assert {cid: len(rows.get(cid, [])) for cid in answered} == dict.fromkeys(answered, 1)
    assert all(rows[cid][0].ended_at is not None for cid in answered)
    reasons = {cid: rows[cid][0].end_reason for cid in answered}
    assert {cid for cid, r in reasons.items() if r == NODE_LOST} == on_node2
    with topo.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Call)).scalar() == 20
        # with its events: the greeting the agent spoke is a speech segment of every call that ran
        spoken = dict(
            conn.execute(
                select(Call.call_id, func.count(SpeechSegment.id))
                .join(SpeechSegment, SpeechSegment.call_id == Call.id)
                .where(SpeechSegment.speaker == "agent")
                .group_by(Call.call_id)
            ).all()
        )
    assert {cid for cid in answered if cid not in on_node2} <= set(spoken), "calls without their events"
    print(f"\nnode2 killed: its {len(on_node2)} calls closed as node_lost {closed_after:.1f} s later")
