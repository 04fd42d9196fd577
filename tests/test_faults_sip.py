"""Faults of the SIP edge with a real caller (sipp) and the real database: a pjsua2 worker killed
with SIGKILL mid-call, a session host killed mid-call. In both, the caller must get a BYE within a
few seconds (not dead air), the call's row must end with a reason that says what happened, and the
next call must work."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_fixtures import fill, mounted_tmpfs
from sip_fixtures import (
    REPO,
    SCENARIOS,
    gateway_processes,
    gateway_serve,
    kill_group,
    needs_sipp_and_kamailio,
    run_sipp,
    sipp_in_background,
)
from sqlalchemy import select

from gateway.demo import start_process, stop_process
from gateway.edges.sip.kamailio import RPC_SOCKET, dialogs_of_worker, rpc_call
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.worker_options import WorkerOptions
from gateway.metrics.database import create_db_engine
from gateway.metrics.schema import upgrade
from gateway.metrics.tables import Call

pytestmark = needs_sipp_and_kamailio()

PCMU = ["-s", "default", "-m", "1", "-key", "pt", "0", "-key", "codec", "PCMU"]
BYE_WITHIN = 8.0  # seconds: "a few", generous for a loaded shared machine


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    run_dir: Path
    db: str
    tmp: Path

    def calls(self) -> list[tuple[str, str | None]]:
        engine = create_db_engine(self.db)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(Call.call_id, Call.end_reason).order_by(Call.id)).all()
        finally:
            engine.dispose()
        return [(r.call_id, r.end_reason) for r in rows]

    def wait_calls(self, check: object, timeout: float = 15.0) -> list[tuple[str, str | None]]:
        """The calls table once `check(rows)` holds (another process writes it: poll, deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.calls()
            if check(rows) or time.monotonic() > deadline:  # type: ignore[operator]
                return rows
            time.sleep(0.1)


@contextlib.contextmanager
def serve(tmp_path: Path, data_dir: Path) -> Iterator[Served]:
    """`gateway serve` with the default agent, 2 workers, 1 session host; the SQLite database and
    the spool in `data_dir`."""
    db = f"sqlite:///{data_dir / 'gateway.db'}"
    upgrade(db)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"database: {{url: '{db}', spool_dir: '{data_dir / 'spool'}'}}\n"
        "routes: []\n"
        "sip: {workers: 2, session_hosts: 1, rate_limit: null}\n"
    )
    port = free_port()
    run_dir = tmp_path / "run"
    proc = start_process(
        [sys.executable, "-m", "gateway", "-v", "serve", "--config", str(config), "--sip-port", str(port),
         "--http-port", "0", "--run-dir", str(run_dir)],
        tmp_path / "serve.log",
        wait_for=b"SERVING",
        cwd=REPO,
    )  # fmt: skip
    try:
        yield Served(proc, port, run_dir, db, tmp_path)
    finally:
        stop_process(proc)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, tmp_path) as gw:
        yield gw


def worker_pid_on_port(run_dir: Path, sip_port: int) -> int:
    for pid, args in gateway_processes(run_dir, b"gateway.edges.sip.worker").items():
        if WorkerOptions.from_json(args[args.index(b"--options") + 1].decode()).endpoint.sip_port == sip_port:
            return pid
    raise AssertionError(f"no worker on port {sip_port}")


def call_in_progress(gw: Served) -> tuple[subprocess.Popen[bytes], int]:
    """A sipp call that waits for the gateway's BYE (echoing the agent's RTP); the SIP port of the
    worker holding it, as the front's dialog state says."""
    caller = sipp_in_background(gw.tmp, gw.port, "uac_wait_bye.xml", *PCMU, "-mp", "0", "-rtp_echo")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = rpc_call(gw.run_dir / RPC_SOCKET, "dlg.list", [])
        confirmed = [d for d in listed or [] if d.get("state") == 4]  # 4: confirmed
        if confirmed and any(reason is None for _, reason in gw.calls()):
            for d in confirmed:
                for v in d.get("variables") or []:
                    if "worker" in v:
                        port = int(str(v["worker"]).split(";")[0].rsplit(":", 1)[1])
                        assert dialogs_of_worker(listed, "127.0.0.1", port) == [d]
                        return caller, port
        time.sleep(0.1)  # the call is set up by other processes: poll with a deadline
    kill_group(caller)
    raise AssertionError("the call did not start")


def wait_bye(caller: subprocess.Popen[bytes], since: float, within: float = BYE_WITHIN) -> float:
    """Seconds from `since` until sipp got its BYE and answered it (sipp exits 0), at most `within`."""
    try:
        code = caller.wait(timeout=within)
    except subprocess.TimeoutExpired:
        kill_group(caller)
        raise AssertionError("the caller got no BYE: dead air") from None
    assert code == 0, f"sipp exited {code}"
    return time.monotonic() - since


def test_worker_killed_mid_call_caller_gets_bye_and_row_says_worker_lost(served: Served) -> None:
    gw = served
    caller, port = call_in_progress(gw)
    pid = worker_pid_on_port(gw.run_dir, port)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    waited = wait_bye(caller, t0)
    print(f"BYE {waited:.2f} s after the SIGKILL (shared, loaded machine)")
    assert waited < BYE_WITHIN
    rows = gw.wait_calls(lambda rows: rows and rows[-1][1] is not None)
    assert [reason for _, reason in rows] == ["worker_lost"]
    # New calls work (round robin: one of these two goes to the killed worker's index) ...
    for _ in range(2):
        res = run_sipp(gw.tmp, gw.port, "uac_echo.xml", *PCMU, "-d", "300")
        assert res.returncode == 0, res.stdout[-2000:]
    # ... and the worker was replaced on its port.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if worker_pid_on_port(gw.run_dir, port) != pid:
                break
        except AssertionError:
            pass
        time.sleep(0.1)  # another process restarts it: poll with a deadline
    assert worker_pid_on_port(gw.run_dir, port) != pid
    rows = gw.wait_calls(lambda rows: len(rows) == 3 and all(r for _, r in rows))
    assert [reason for _, reason in rows] == ["worker_lost", "caller_hangup", "caller_hangup"]
    assert "the front ended them" in (gw.tmp / "serve.log").read_text()


def test_session_host_killed_mid_call_caller_gets_bye_and_row_says_host_lost(served: Served) -> None:
    gw = served
    caller, _ = call_in_progress(gw)
    (host_pid,) = gateway_processes(gw.run_dir, b"session-host")
    t0 = time.monotonic()
    os.kill(host_pid, signal.SIGKILL)
    waited = wait_bye(caller, t0)  # from the worker: it lost its host, so it hangs up
    print(f"BYE {waited:.2f} s after the SIGKILL of the session host (shared, loaded machine)")
    assert waited < BYE_WITHIN
    # The host's sessions died with it: the parent closes the row.
    rows = gw.wait_calls(lambda rows: rows and rows[-1][1] is not None)
    assert [reason for _, reason in rows] == ["host_lost"]
    # The host and the workers come back; then calls work again (503 while they restart).
    deadline = time.monotonic() + 30
    while True:
        res = run_sipp(gw.tmp, gw.port, "uac_echo.xml", *PCMU, "-d", "300")
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # processes of the gateway restart: retry with a deadline
    assert res.returncode == 0, res.stdout[-2000:]
    assert set(gateway_processes(gw.run_dir, b"session-host")) != {host_pid}
    rows = gw.wait_calls(lambda rows: len(rows) == 2 and all(r for _, r in rows))
    assert [reason for _, reason in rows] == ["host_lost", "caller_hangup"]
    log = (gw.tmp / "serve.log").read_text()
    assert "session host 0 died in 1 calls" in log


def test_disk_full_under_database_and_spool_calls_go_on(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "fs", "8m") as fs, serve(tmp_path, fs) as gw:
        filler = fill(fs)
        for _ in range(2):
            res = run_sipp(gw.tmp, gw.port, "uac_echo.xml", *PCMU, "-d", "300")
            assert res.returncode == 0, res.stdout[-2000:]
        log = gw.tmp / "serve.log"
        deadline = time.monotonic() + 15
        while "cannot grow" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # the writer's cycle in another process: poll with a deadline
        assert "cannot grow" in log.read_text()
        filler.unlink()  # room again: the calls' records land
        rows = gw.wait_calls(lambda rows: len(rows) == 2 and all(r for _, r in rows))
        assert [reason for _, reason in rows] == ["caller_hangup", "caller_hangup"]


def test_worker_killed_while_the_call_rings_caller_gets_503_at_once(tmp_path: Path) -> None:
    """No BYE for a call not yet answered: without the front's answer the caller would hear it
    ring until the INVITE transaction times out (60 s)."""
    with gateway_serve(tmp_path, "--ring-delay", "20", workers=2) as gw:
        messages = tmp_path / "sipp_messages.log"
        caller = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / "uac_echo.xml"), "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-p", "0", "-nostdin", *PCMU, "-trace_msg", "-message_file", str(messages),
             f"127.0.0.1:{gw.port}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            ringing: list[Any] = []
            while not ringing and time.monotonic() < deadline:
                time.sleep(0.1)  # the call is set up by other processes: poll with a deadline
                listed = rpc_call(gw.run_dir / RPC_SOCKET, "dlg.list", [])
                ringing = [d for d in listed or [] if d.get("state") == 2]  # 2: early (ringing)
            assert ringing, "the call did not ring"
            (variable,) = ringing[0]["variables"]
            port = int(str(variable["worker"]).split(";")[0].rsplit(":", 1)[1])
            t0 = time.monotonic()
            os.kill(worker_pid_on_port(gw.run_dir, port), signal.SIGKILL)
            caller.wait(timeout=BYE_WITHIN + 5)
            waited = time.monotonic() - t0
        finally:
            kill_group(caller)
        print(f"503 {waited:.2f} s after the SIGKILL (shared, loaded machine)")
        assert waited < BYE_WITHIN
        text = messages.read_text()
        assert "SIP/2.0 503 Worker Lost" in text and "Retry-After:" in text


def test_worker_hung_mid_call_is_killed_and_its_caller_gets_bye(served: Served) -> None:
    """A worker that stops (SIGSTOP: no heartbeat, no SIP) is killed by the supervisor after its
    heartbeat timeout (5 s), then its call is ended as for a crash."""
    gw = served
    caller, port = call_in_progress(gw)
    pid = worker_pid_on_port(gw.run_dir, port)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    waited = wait_bye(caller, t0, within=5.0 + BYE_WITHIN)
    print(f"BYE {waited:.2f} s after the SIGSTOP (heartbeat timeout 5 s; shared, loaded machine)")
    rows = gw.wait_calls(lambda rows: rows and rows[-1][1] is not None)
    assert [reason for _, reason in rows] == ["worker_lost"]
    log = (gw.tmp / "serve.log").read_text()
    assert "missed its heartbeat" in log and "the front ended them" in log


def test_front_killed_mid_call_the_call_goes_on_and_ends_normally(served: Served) -> None:
    """RTP does not cross the front; the caller's BYE (retransmitted while the front is down)
    reaches the worker through the restarted front on its Record-Route."""
    gw = served
    caller = sipp_in_background(gw.tmp, gw.port, "uac_echo.xml", *PCMU, "-d", "4000")
    deadline = time.monotonic() + 15
    while not any(d.get("state") == 4 for d in rpc_call(gw.run_dir / RPC_SOCKET, "dlg.list", []) or []):
        assert time.monotonic() < deadline, "the call did not start"
        time.sleep(0.1)  # the call is set up by other processes: poll with a deadline
    front_pid = int((gw.run_dir / "kamailio.pid").read_text())
    os.kill(front_pid, signal.SIGKILL)
    try:
        code = caller.wait(timeout=40)  # BYE retransmissions last 32 s
    finally:
        kill_group(caller)
    assert code == 0, f"sipp exited {code}"
    rows = gw.wait_calls(lambda rows: rows and rows[-1][1] is not None)
    assert [reason for _, reason in rows] == ["caller_hangup"]
    # The restarted front answers RPC again (for the next dead worker): its dialog list is empty.
    assert not rpc_call(gw.run_dir / RPC_SOCKET, "dlg.list", [])
