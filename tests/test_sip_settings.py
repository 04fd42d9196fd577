"""Config -> SIP edge plumbing: media address and RTP ports, ring/retry/drain, session timers.

No external network: the advertised address 192.0.2.10 (TEST-NET-1) only appears in SDP text;
nothing is sent to it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sip_fixtures import (
    REPO,
    RawSip,
    bare_worker,
    bare_worker_command,
    header,
    invite,
    sdp_of,
    sdp_offer,
    sip_plan,
    status,
)

from gateway.edges.sip.service import SipPlan, SipService, rtp_ranges
from gateway.edges.sip.sessions import silent
from gateway.edges.sip.worker_options import WorkerOptions


def plan_for(tmp_path: Path, *overrides: str, workers: int = 2) -> SipPlan:
    plan = sip_plan(*overrides, workers=workers)
    plan.run_dir = tmp_path
    return plan


def worker_options_of(service: SipService) -> list[WorkerOptions]:
    """What each worker is told: the JSON on its command line, read back as the worker reads it."""
    options = []
    for wp in service.supervisor.workers:
        cmd = service.supervisor.command(wp.spec)
        assert cmd[-2] == "--options"
        options.append(WorkerOptions.from_json(cmd[-1]))
    return options


def test_defaults_keep_todays_worker_settings(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert (plan.ring_delay, plan.retry_after, plan.drain_timeout) == (0.0, 5, 30.0)
    assert (plan.media_address, plan.rtp_ports, plan.tls_port) == ("", None, 0)
    service = SipService(plan, silent)
    for opts in worker_options_of(service):
        ep = opts.endpoint
        assert ep.rtp_port == 20000 + (ep.sip_port % 400) * 100 and ep.rtp_port_range == 1000
        assert (ep.host, ep.rtp_host, ep.media_address) == ("127.0.0.1", "127.0.0.1", "")
        assert (ep.session_timer, ep.session_expires, ep.min_se) == ("optional", 1800, 90)
        assert (ep.codecs, ep.tcp, ep.max_calls) == (("PCMU", "PCMA", "G722"), True, 4)
        assert (opts.ring_delay, opts.retry_after, opts.rtp_timeout, opts.max_duration) == (
            0.0,
            5,
            30.0,
            3600.0,
        )
        assert opts.control == service.host.socket_path and opts.routes == []


def test_media_address_rtp_ports_and_timers_reach_the_workers(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        "sip.media_address=192.0.2.10",
        "sip.rtp_ports=[30001, 30100]",
        "sip.session_timers={mode: required, expires: 600, min_se: 120}",
        "sip.ring_delay=1.5",
        "sip.retry_after=20",
        "routes=[{match: dental, agent: agents/dental.yaml}]",
        workers=2,
    )
    options = worker_options_of(SipService(plan, silent))
    assert [o.index for o in options] == [0, 1]
    assert [o.endpoint.media_address for o in options] == ["192.0.2.10", "192.0.2.10"]
    # [30001, 30100] from an even port: 30002.., split in two, each an even number of ports.
    assert [(o.endpoint.rtp_port, o.endpoint.rtp_port_range) for o in options] == [(30002, 48), (30050, 48)]
    for opts in options:
        assert opts.endpoint.session_timer == "required"
        assert (opts.endpoint.session_expires, opts.endpoint.min_se) == (600, 120)
        assert (opts.ring_delay, opts.retry_after) == (1.5, 20)
        assert opts.routes == [("dental", "agents/dental.yaml")]
        assert opts.endpoint.host == "127.0.0.1"  # worker SIP stays on loopback behind the front


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

    command = bare_worker_command(
        5099,
        "sip.media_address=192.0.2.10",
        "sip.host=0.0.0.0",
        "sip.rtp_ports=[30002, 30049]",
        "sip.session_timers={mode: off, expires: 600, min_se: 120}",
    )
    ep = parse_args(command[3:]).endpoint  # the worker reads its command line back
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
    default = account_config(parse_args(bare_worker_command(5099)[3:]).endpoint, 5099)
    assert default.callConfig.timerUse == pj.PJSUA_SIP_TIMER_OPTIONAL
    assert default.mediaConfig.transportConfig.publicAddress == ""


def test_sdp_advertises_the_media_address_and_session_timers_apply() -> None:
    settings = ["sip.media_address=192.0.2.10", "sip.rtp_ports=[31000, 31019]"]
    with bare_worker(*settings, "sip.session_timers={mode: required, expires: 600}") as (port, _):
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
