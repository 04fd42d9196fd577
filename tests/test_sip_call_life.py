"""Call life through the front: ringing and CANCEL, SIP INFO DTMF, RTP timeout, maximum duration,
graceful drain, and a worker killed mid-service."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sip_fixtures import (
    gateway_processes,
    gateway_serve,
    invite_reply,
    kill_group,
    needs_sipp_and_kamailio,
    run_sipp,
    sipp_in_background,
    status,
)

from gateway.edges.sip.worker_options import WorkerOptions

pytestmark = needs_sipp_and_kamailio()

PCMU = ["-s", "dental", "-m", "1", "-key", "pt", "0", "-key", "codec", "PCMU"]


def test_cancel_while_ringing_then_info_dtmf(tmp_path: Path) -> None:
    # a long ring: on a loaded machine the CANCEL must still beat the 200 OK by a wide margin
    with gateway_serve(tmp_path, "--ring-delay", "2.5") as gw:
        res = run_sipp(tmp_path, gw.port, "uac_cancel.xml", *PCMU)
        assert res.returncode == 0, res.stdout[-2000:]  # 180, then 200 for the CANCEL and 487
        t0 = time.monotonic()
        res = run_sipp(tmp_path, gw.port, "uac_info_dtmf.xml", *PCMU, "-d", "800")
        assert res.returncode == 0, res.stdout[-2000:]
        assert time.monotonic() - t0 >= 2.5  # it rang before the answer
        (call,) = gw.results(1)  # the cancelled call never reached a session
    assert call["dtmf"] and call["dtmf"][0][1] == "7"
    assert 0.2 <= call["dtmf"][0][0] <= 0.6
    assert call["reason"] == "caller_hangup"


def test_rtp_timeout_and_max_duration(tmp_path: Path) -> None:
    limits = ["--set", "limits.rtp_timeout=1", "--set", "limits.max_call_duration=2"]
    with gateway_serve(tmp_path, *limits) as gw:
        t0 = time.monotonic()
        res = run_sipp(tmp_path, gw.port, "uac_wait_bye.xml", *PCMU)  # sends no RTP at all
        assert res.returncode == 0, res.stdout[-2000:]
        silent_for = time.monotonic() - t0
        (first,) = gw.results(1)
        t0 = time.monotonic()
        res = run_sipp(tmp_path, gw.port, "uac_wait_bye.xml", *PCMU, "-mp", "0", "-rtp_echo")
        assert res.returncode == 0, res.stdout[-2000:]
        echo_for = time.monotonic() - t0
        second = gw.results(2)[1]
    assert first["reason"] == "rtp_timeout" and 1.0 <= silent_for <= 2.5
    assert second["reason"] == "max_duration" and 2.0 <= echo_for <= 3.5


def test_drain_refuses_new_calls_and_lets_calls_finish(tmp_path: Path) -> None:
    with gateway_serve(tmp_path) as gw:
        call = sipp_in_background(tmp_path, gw.port, "uac_echo.xml", *PCMU, "-d", "2500")
        try:
            assert gw.wait_started(1)
            os.kill(gw.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while "draining" not in gw.log("worker0.log") and time.monotonic() < deadline:
                time.sleep(0.05)  # the drain reaches the worker in another process: poll its log
            assert status(invite_reply(gw.port)) == 503
            assert call.wait(15) == 0  # the call in progress finished normally
        finally:
            kill_group(call)
        assert gw.proc.wait(15) == 0
        results = gw.results(1)
    assert [r["reason"] for r in results] == ["caller_hangup"]


def test_sigterm_after_calls_exits_without_errors(tmp_path: Path) -> None:
    """A clean stop is not an incident: every process exits and no ERROR is logged.

    The first call outlasts the supervisor's heartbeat timeout (5 s), so the workers are old enough
    to be taken for hung ones while they close their links and exit (issue #14: each worker was
    reported "missed its heartbeat; killing it" on every stop).
    """
    with gateway_serve(tmp_path, workers=2) as gw:
        res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *PCMU, "-d", "5500")
        assert res.returncode == 0, res.stdout[-2000:]
        assert len(gw.results(1)) == 1
        assert set(_worker_pids(gw.run_dir)) == {0, 1}
        os.kill(gw.proc.pid, signal.SIGTERM)
        assert gw.proc.wait(20) == 0
        assert _worker_pids(gw.run_dir) == {}  # no worker outlived `gateway serve`
        logs = {"serve.err": (tmp_path / "serve.err").read_text(errors="replace")}
        logs.update({p.name: p.read_text(errors="replace") for p in gw.run_dir.glob("worker*.log")})
    assert "draining" in logs["serve.err"]  # the verbose log (-v), up to the stop
    errors = {name: [line for line in text.splitlines() if " ERROR " in line] for name, text in logs.items()}
    assert errors == {name: [] for name in logs}


def _worker_pids(run_dir: Path) -> dict[int, int]:
    """Worker index -> pid of the workers of `run_dir`'s gateway, read from their command lines."""
    pids = {}
    for pid, args in gateway_processes(run_dir, b"gateway.edges.sip.worker").items():
        if b"--options" not in args:
            continue
        options = WorkerOptions.from_json(args[args.index(b"--options") + 1].decode())
        if options.control and Path(options.control).parent == run_dir:  # a session host's socket
            pids[options.index] = pid
    return pids


def test_worker_killed_calls_go_elsewhere_and_it_restarts(tmp_path: Path) -> None:
    with gateway_serve(tmp_path, workers=2) as gw:
        before = _worker_pids(gw.run_dir)
        assert set(before) == {0, 1}
        os.kill(before[0], signal.SIGKILL)
        for _ in range(3):  # round robin would send one of these to the dead worker
            res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *PCMU, "-d", "300")
            assert res.returncode == 0, res.stdout[-2000:]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the supervisor restarts it in its own time
            after = _worker_pids(gw.run_dir)
            if after.get(0) not in (None, before[0]):
                break
            time.sleep(0.1)
        assert after.get(0) not in (None, before[0]) and after[1] == before[1]
        assert len(gw.results(3)) == 3
        # The front itself dies: `serve` restarts it and calls go through again.
        front_pid = int((gw.run_dir / "kamailio.pid").read_text())
        os.kill(front_pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid_file = gw.run_dir / "kamailio.pid"
            if pid_file.exists() and pid_file.read_text().strip() not in ("", str(front_pid)):
                break
            time.sleep(0.1)  # another process restarts it: poll with a deadline
        res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *PCMU, "-d", "300")
        assert res.returncode == 0, res.stdout[-2000:]
        assert len(gw.results(4)) == 4
