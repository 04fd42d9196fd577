"""Capacity in CI: many SIP calls through the front on the whole runtime, and admission control.

`bench/bench_capacity.py` is the full measurement (up to 100 calls, the dental agent, CPU and
latency tables); here a CI-size run fails on what must never happen under load: a dropped frame,
a call without its barge-in verdicts, a call beyond the limits taken instead of refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sip_fixtures import kill_group, needs_sipp_and_kamailio, run_sipp

from bench.bench_capacity import LIGHT_AGENT, LIGHT_CALLER, render_caller, run_level
from gateway.edges.sip.pcap import wav_to_pcap
from gateway.edges.sip.ports import free_port

pytestmark = needs_sipp_and_kamailio()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with the light agent and its caller (uh-huh, then a barge-in) as caller.pcap."""
    work = tmp_path_factory.mktemp("capacity")
    (work / "light.yaml").write_text(LIGHT_AGENT)
    render_caller(LIGHT_CALLER, 9.0, work / "light.wav")
    wav_to_pcap(work / "light.wav", work / "caller.pcap", "PCMU")
    return work


def test_24_calls_lose_no_frame_and_no_barge_in_decision(light: Path) -> None:
    run = run_level(light, "light", light / "light.yaml", 24, 8.0, ["sip.session_hosts=2"], "ci")
    errors = light / "light-ci-24" / "sipp_errors.log"
    assert (run.answered, run.failed) == (24, 0), (run, errors.read_text()[-3000:] if errors.exists() else "")
    assert run.frames >= 24 * 8 * 50 * 0.95, run  # the calls really carried their audio
    assert run.dropped == 0, f"{run.dropped} frames dropped"
    # every call decided its barge-in ("actually, wait" over the greeting), none fell back to VAD
    with_interruption = [call for call, kinds in run.kinds.items() if "interruption" in kinds]
    assert len(with_interruption) == 24, run.kinds
    assert run.fallbacks == 0


def test_calls_beyond_a_hosts_limit_get_503_with_retry_after(light: Path) -> None:
    """One session host capped at 4 calls (shared by its 2 workers): of 8 calls at once, 4 are
    answered and 4 refused at the front with 503 + Retry-After, counted in Prometheus."""
    work = light / "admission"
    work.mkdir()
    db = f"sqlite:///{work / 'gateway.db'}"
    subprocess.run([sys.executable, "-m", "gateway", "db", "upgrade", "--db", db], check=True, cwd=REPO)
    config = work / "gateway.yaml"
    config.write_text(
        f"database: {{url: '{db}', spool_dir: '{work / 'spool'}'}}\n"
        f"routes: [{{match: light, agent: '{light / 'light.yaml'}'}}]\n"
        "http: {port: 0}\n"
        "sip: {rate_limit: null, retry_after: 7, session_hosts: 1, admission: {max_calls_per_host: 4}}\n"
    )
    port = free_port()
    err = work / "serve.err"
    with open(err, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-v", "serve", "--config", str(config), "--sip-port", str(port),
             "--workers", "2", "--run-dir", str(work / "run"), "--drain-timeout", "2"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith(b"SERVING"), err.read_text()[-3000:]
        http = re.search(r"HTTP on [\d.]+:(\d+)", err.read_text())
        assert http is not None
        res = run_sipp(
            light, port, "uac_pcap.xml", "-s", "light", "-key", "pt", "0", "-key", "codec", "PCMU",
            "-d", "3000", "-m", "8", "-l", "8", "-r", "8", timeout=60,
        )  # fmt: skip
        errors = (light / "sipp_errors.log").read_text(errors="replace")
        assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*4\b", res.stdout), res.stdout[-3000:]
        assert errors.count("SIP/2.0 503") == 4, errors[-3000:]
        assert errors.count("Retry-After: 7") == 4, errors[-3000:]
        url = f"http://127.0.0.1:{http[1]}/metrics"
        deadline = time.monotonic() + 10
        while True:  # the workers report their counters every second, from other processes
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            refusals = re.search(r"^gateway_sip_worker_refusals_overload_total ([\d.]+)$", text, re.M)
            if (refusals and float(refusals[1]) >= 4) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # each refused call was refused by both workers (the front tries the next one)
        assert refusals is not None and 4 <= float(refusals[1]) <= 8, text
        assert 'gateway_sip_session_host_admitting{host="0"} 1.0' in text
    finally:
        kill_group(serve)
