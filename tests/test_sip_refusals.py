"""What the SIP edge refuses leaves a trace: sipp offers that the gateway must refuse (opus only; IPv6
media) get 488 with a Warning header, and each gives a log line, a counter by reason and a row in
`call_attempts_refused` (SQLite and PostgreSQL), through a real `gateway serve` (full runtime)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sip_fixtures import REPO, kill_group, run_sipp
from sqlalchemy import select

from gateway.edges.sip.ports import free_port
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.tables import RefusedAttempt

pytestmark = [pytest.mark.slow]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    sip_port: int
    http: str
    err: Path

    def log(self) -> str:
        return self.err.read_text(errors="replace")


@contextlib.contextmanager
def full_gateway(
    tmp_path: Path, db_url: str, agent_yaml: str = "agent: plain\n", *args: str
) -> Iterator[Served]:
    """`gateway serve` with the whole runtime (metrics database, HTTP, AgentRunner) and one worker."""
    schema.upgrade(db_url)
    agent = tmp_path / "agent.yaml"
    agent.write_text(agent_yaml)
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"database: {{spool_dir: {tmp_path / 'spool'}, batch_interval: 0.2}}\n"
        f"sip:\n  rate_limit: null\nroutes: []\ndefault_agent: {agent}\n"
    )
    err = tmp_path / "serve.err"
    sip_port = free_port()
    cmd = [
        sys.executable, "-m", "gateway", "-v", "serve", "--config", str(config), "--db", db_url,
        "--http-port", "0", "--sip-port", str(sip_port), "--workers", "1",
        "--run-dir", str(tmp_path / "run"), "--drain-timeout", "1", *args,
    ]  # fmt: skip
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # SERVING ... once every service is up
        assert line.startswith("SERVING"), err.read_text()[-3000:]
        m = re.search(r"HTTP on [\d.]+:(\d+)", err.read_text())
        assert m, err.read_text()[-3000:]
        yield Served(proc, sip_port, f"http://127.0.0.1:{m.group(1)}", err)
    finally:
        kill_group(proc)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def wait_for(check: object, timeout: float = 15.0) -> object:
    """Poll `check()` (state of another process) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()  # type: ignore[operator]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def refused_rows(db_url: str) -> list[tuple[str, str, int | None, str, str]]:
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)  # type: ignore[misc]
                for r in conn.execute(
                    select(
                        RefusedAttempt.edge,
                        RefusedAttempt.reason,
                        RefusedAttempt.status,
                        RefusedAttempt.detail,
                        RefusedAttempt.edge_call_id,
                    ).order_by(RefusedAttempt.id)
                ).all()
            ]
    finally:
        engine.dispose()


def test_refused_offers_leave_a_trace(tmp_path: Path, db_url: str) -> None:
    with full_gateway(tmp_path, db_url) as gw:
        opus = run_sipp(
            tmp_path, gw.sip_port, "uac_refused.xml", "-s", "plain", "-m", "1",
            "-key", "conn", "IP4 127.0.0.1", "-key", "pt", "111", "-key", "codec", "opus/48000/2",
            "-trace_logs", "-log_file", str(tmp_path / "opus.log"),
        )  # fmt: skip
        assert opus.returncode == 0, opus.stdout[-2000:]
        ipv6 = run_sipp(
            tmp_path, gw.sip_port, "uac_refused.xml", "-s", "plain", "-m", "1",
            "-key", "conn", "IP6 ::1", "-key", "pt", "0", "-key", "codec", "PCMU/8000",
            "-trace_logs", "-log_file", str(tmp_path / "ipv6.log"),
        )  # fmt: skip
        assert ipv6.returncode == 0, ipv6.stdout[-2000:]  # the scenario checks the Warning header
        assert "IPv6" in (tmp_path / "ipv6.log").read_text()
        text = ""
        for _ in range(75):  # the count comes with the worker's next heartbeat (another process)
            text = get(f"{gw.http}/metrics")
            if "media_address_family" in text:
                break
            time.sleep(0.2)
        assert 'gateway_call_attempts_refused_total{edge="sip",reason="codec"} 1.0' in text
        assert 'gateway_call_attempts_refused_total{edge="sip",reason="media_address_family"} 1.0' in text
        rows = wait_for(lambda: len(r := refused_rows(db_url)) == 2 and r)
        log = gw.log()
    assert "sip call attempt refused (codec, 488): no codec in common: the offer has opus/48000/2" in log
    assert "sip call attempt refused (media_address_family, 488)" in log
    assert isinstance(rows, list)
    assert [(e, r, s) for e, r, s, _, _ in rows] == [
        ("sip", "codec", 488),
        ("sip", "media_address_family", 488),
    ]
    assert all(call_id for *_, call_id in rows)  # the SIP Call-ID, to find it in traces


def test_front_refusals_leave_a_trace(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'gw.db'}"
    with full_gateway(tmp_path, db_url, "agent: plain\n", "--set", "sip.allow=[10.0.0.0/8]") as gw:
        res = run_sipp(
            tmp_path, gw.sip_port, "uac_refused.xml", "-s", "plain", "-m", "1",
            "-key", "conn", "IP4 127.0.0.1", "-key", "pt", "0", "-key", "codec", "PCMU/8000",
        )  # fmt: skip
        assert res.returncode != 0  # it wanted a 488; the front said 403
        assert "403" in (tmp_path / "sipp_errors.log").read_text()
        rows = wait_for(lambda: refused_rows(db_url))
        text = get(f"{gw.http}/metrics")
        log = gw.log()
    assert isinstance(rows, list)
    ((edge, reason, status, detail, call_id),) = rows
    assert (edge, reason, status) == ("sip", "auth", 403) and detail == "front: source not in sip.allow"
    assert call_id
    assert 'gateway_call_attempts_refused_total{edge="sip",reason="auth"} 1.0' in text
    assert "sip call attempt refused (auth, 403): front: source not in sip.allow; from 127.0.0.1" in log
