"""Config -> SIP edge plumbing: media address and RTP ports, ring/retry/drain, session timers.

No external network: the advertised address 192.0.2.10 (TEST-NET-1) only appears in SDP text;
nothing is sent to it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sip_fixtures import REPO, RawSip, header, invite, kill_group, sdp_of, sdp_offer, status

from gateway.config.loader import load_gateway_config
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.service import SipPlan, SipService, plan_from_config, rtp_ranges
from gateway.edges.sip.sessions import silent


def plan_for(tmp_path: Path, *overrides: str, workers: int = 2) -> SipPlan:
    cfg = load_gateway_config(None, ["routes=[]", *overrides]).config
    plan = plan_from_config(cfg, workers=workers)
    plan.run_dir = tmp_path
    return plan


def option(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_defaults_keep_todays_worker_command(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert (plan.ring_delay, plan.retry_after, plan.drain_timeout) == (0.0, 5, 30.0)
    assert (plan.media_address, plan.rtp_ports, plan.tls_port) == ("", None, 0)
    service = SipService(plan, silent)
    for wp in service.supervisor.workers:
        cmd = service.supervisor.command(wp.spec)
        assert option(cmd, "--rtp-port") == str(20000 + (wp.spec.sip_port % 400) * 100)
        assert option(cmd, "--rtp-port-range") == "1000"
        assert option(cmd, "--rtp-host") == "127.0.0.1"
        assert "--media-address" not in cmd
        assert (option(cmd, "--session-timer"), option(cmd, "--session-expires")) == ("optional", "1800")
        assert (option(cmd, "--ring-delay"), option(cmd, "--retry-after")) == ("0.0", "5")


def test_media_address_rtp_ports_and_timers_reach_the_workers(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        "sip.media_address=192.0.2.10",
        "sip.rtp_ports=[30001, 30100]",
        "sip.session_timers={mode: required, expires: 600, min_se: 120}",
        "sip.ring_delay=1.5",
        "sip.retry_after=20",
        workers=2,
    )
    service = SipService(plan, silent)
    cmds = [service.supervisor.command(wp.spec) for wp in service.supervisor.workers]
    assert [option(c, "--media-address") for c in cmds] == ["192.0.2.10", "192.0.2.10"]
    # [30001, 30100] from an even port: 30002.., split in two, each an even number of ports.
    assert [(option(c, "--rtp-port"), option(c, "--rtp-port-range")) for c in cmds] == [
        ("30002", "48"),
        ("30050", "48"),
    ]
    for cmd in cmds:
        assert option(cmd, "--session-timer") == "required"
        assert (option(cmd, "--session-expires"), option(cmd, "--min-se")) == ("600", "120")
        assert (option(cmd, "--ring-delay"), option(cmd, "--retry-after")) == ("1.5", "20")
        assert option(cmd, "--host") is None  # worker SIP stays on loopback behind the front


def test_rtp_ranges() -> None:
    assert rtp_ranges(20000, 29999, [4, 4]) == [(20000, 5000), (25000, 5000)]
    assert rtp_ranges(20000, 20015, [4, 4]) == [(20000, 8), (20008, 8)]
    with pytest.raises(ValueError, match="8 are needed per worker"):
        rtp_ranges(20000, 20013, [4, 4])


def test_serve_refuses_an_rtp_range_too_narrow(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("sip:\n  workers: 4\n  rtp_ports: [40000, 40020]\nroutes: []\n")
    res = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--session", "x:y"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert f"{config}:3: sip.rtp_ports: [40000, 40020] gives each of the 4 workers 4 ports" in res.stderr


def test_worker_options_and_account_config() -> None:
    import pjsua2 as pj

    from gateway.edges.sip.endpoint import account_config
    from gateway.edges.sip.worker import parse_args

    opts = parse_args(
        [
            "--media-address", "192.0.2.10", "--rtp-host", "0.0.0.0", "--rtp-port", "30002",
            "--rtp-port-range", "48", "--session-timer", "off", "--session-expires", "600", "--min-se", "120",
        ]
    )  # fmt: skip
    ep = opts.endpoint
    assert (ep.host, ep.media_address, ep.public_address) == ("127.0.0.1", "192.0.2.10", "")
    acfg = account_config(ep, 5099)
    media = acfg.mediaConfig.transportConfig
    assert (media.boundAddress, media.publicAddress, media.port, media.portRange) == (
        "0.0.0.0",
        "192.0.2.10",
        30002,
        48,
    )
    assert acfg.idUri == "sip:gateway@127.0.0.1:5099"  # SIP itself is not advertised on the media address
    assert acfg.callConfig.timerUse == pj.PJSUA_SIP_TIMER_INACTIVE
    assert (acfg.callConfig.timerSessExpiresSec, acfg.callConfig.timerMinSESec) == (600, 120)
    default = account_config(parse_args([]).endpoint, 5099)
    assert default.callConfig.timerUse == pj.PJSUA_SIP_TIMER_OPTIONAL
    assert default.mediaConfig.transportConfig.publicAddress == ""


@contextlib.contextmanager
def bare_worker(*args: str) -> Iterator[int]:
    """A worker without a session host (frames discarded), straight on a loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.edges.sip.worker", "--sip-port", str(port), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"READY")
        yield port
    finally:
        kill_group(proc)


def test_sdp_advertises_the_media_address_and_session_timers_apply() -> None:
    args = ["--media-address", "192.0.2.10", "--rtp-port", "31000", "--rtp-port-range", "20"]
    with bare_worker(*args, "--session-timer", "required", "--session-expires", "600") as port:
        raw = RawSip()
        try:
            # session timers required: a caller without timer support is refused (RFC 4028) ...
            reply = raw.request(invite(port, raw.port, body=sdp_offer(raw.port + 2)), port)
            assert status(reply) == 421 and reply is not None and header(reply, "require") == "timer"
            # ... one with it gets our interval
            timer = {"Supported": "timer"}
            reply = raw.request(invite(port, raw.port, body=sdp_offer(raw.port + 2), extra=timer), port)
            assert status(reply) == 200 and reply is not None, reply
            assert (header(reply, "session-expires") or "").startswith("600")
            sdp = sdp_of(reply)
            assert "c=IN IP4 192.0.2.10" in sdp
            m = re.search(r"^m=audio (\d+) ", sdp, re.M)
            assert m is not None and 31000 <= int(m.group(1)) < 31020
            assert status(raw.ack_and_bye(reply, port)) == 200
        finally:
            raw.close()
