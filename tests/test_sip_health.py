"""The SIP edge in /healthz and /metrics: the health check and gauges from `SipService.snapshot()`,
and a real `gateway serve` (full runtime: metrics database, HTTP) reporting them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sip_fixtures import REPO, kill_group, two_workers_of_two_calls

from gateway.edges.sip.health import sip_health, watch_sip
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.service import SipService
from gateway.edges.sip.sessions import silent
from gateway.metrics.prometheus import GatewayMetrics


def snapshot(
    front: bool = True, up: tuple[bool, ...] = (True, True), calls: tuple[int, ...] = (2, 1)
) -> dict[str, Any]:
    per_worker = {
        str(i): {"up": u, "calls": c, "max_calls": 4, "frames_dropped": 3 * i, "restarts": i}
        for i, (u, c) in enumerate(zip(up, calls, strict=True))
    }
    return {
        "front_up": front,
        "workers_up": sum(up),
        "workers": len(up),
        "max_calls": 4 * len(up),
        "active_calls": sum(calls),
        "calls_started": 9,
        "calls_ended": {"caller_hangup": 6},
        "frames_dropped": {"worker": 5, "host": 2},
        "restarts": sum(range(len(up))),
        "per_worker": per_worker,
    }


def test_health_check() -> None:
    ok, details = sip_health(lambda: snapshot())()
    assert ok and details["front"] == "up" and (details["workers_up"], details["workers"]) == (2, 2)
    assert not details["degraded"] and details["active_calls"] == 3 and details["max_calls"] == 8
    ok, details = sip_health(lambda: snapshot(up=(True, False)))()
    assert ok and details["degraded"] and details["workers_up"] == 1  # the front uses the other one
    ok, details = sip_health(lambda: snapshot(up=(False, False), calls=(0, 0)))()
    assert not ok and details["workers_up"] == 0
    ok, details = sip_health(lambda: snapshot(front=False))()
    assert not ok and details["front"] == "down"


def test_gauges_and_frame_drops() -> None:
    metrics = GatewayMetrics()
    watch_sip(metrics.registry, lambda: snapshot(up=(True, False)))
    metrics.frames_dropped("sip", 7)  # what the runtime gives SipService as on_frames_dropped
    text = metrics.exposition().decode()
    assert "gateway_sip_front_up 1.0" in text
    assert "gateway_sip_workers_up 1.0" in text and "gateway_sip_workers 2.0" in text
    assert 'gateway_sip_worker_up{worker="0"} 1.0' in text and 'gateway_sip_worker_up{worker="1"} 0.0' in text
    assert 'gateway_sip_worker_calls{worker="0"} 2.0' in text
    assert 'gateway_sip_worker_calls{worker="1"} 1.0' in text
    assert 'gateway_sip_worker_frames_dropped{worker="1"} 3.0' in text
    assert 'gateway_sip_frames_dropped{queue="worker"} 5.0' in text
    assert 'gateway_frame_drops_total{edge="sip"} 7.0' in text


def test_snapshot_of_a_service_not_started(tmp_path: Path) -> None:
    service = SipService(two_workers_of_two_calls(tmp_path), silent)
    snap = service.snapshot()
    assert (snap["front_up"], snap["workers_up"], snap["workers"]) == (False, 0, 2)
    assert snap["per_worker"]["1"] == {
        "up": False,
        "calls": 0,
        "max_calls": 2,
        "frames_dropped": 0,
        "refused": 0,
        "restarts": 0,
    }
    assert sip_health(service.snapshot)()[0] is False
    metrics = GatewayMetrics()
    watch_sip(metrics.registry, service.snapshot)  # registering does not need a running service
    assert "gateway_sip_workers 2.0" in metrics.exposition().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.slow
def test_serve_reports_sip_health_and_gauges(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    up = subprocess.run(
        [sys.executable, "-m", "gateway", "db", "upgrade", "--db", db],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr.decode()[-2000:]
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"database: {{spool_dir: {tmp_path / 'spool'}}}\nsip:\n  rate_limit: null\nroutes: []\n"
    )
    err_path = tmp_path / "serve.err"
    cmd = [
        sys.executable, "-m", "gateway", "-v", "serve", "--config", str(config), "--db", db,
        "--http-port", "0", "--sip-port", str(free_port()), "--workers", "2",
        "--run-dir", str(tmp_path / "run"), "--drain-timeout", "1",
    ]  # fmt: skip
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # SERVING ... once every service is up
        assert line.startswith("SERVING"), err_path.read_text()[-3000:]
        m = re.search(r"HTTP on [\d.]+:(\d+)", err_path.read_text())
        assert m, err_path.read_text()[-3000:]
        base = f"http://127.0.0.1:{m.group(1)}"
        deadline = time.monotonic() + 10
        while True:  # the workers' links register in the other process: poll with a deadline
            code, body = get(f"{base}/healthz")
            sip = json.loads(body)["checks"]["sip"]
            if sip["workers_up"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert code == 200, body
        assert sip["ok"] and sip["front"] == "up" and (sip["workers_up"], sip["workers"]) == (2, 2)
        code, text = get(f"{base}/metrics")
        assert code == 200
        assert "gateway_sip_front_up 1.0" in text and "gateway_sip_workers_up 2.0" in text
        assert 'gateway_sip_worker_calls{worker="1"} 0.0' in text
    finally:
        kill_group(proc)
