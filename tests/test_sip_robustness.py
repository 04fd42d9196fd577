"""Malformed SIP, routing misses and the capacity limit: the right error, and the gateway keeps serving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sip_fixtures import (
    RawSip,
    gateway_serve,
    header,
    invite,
    invite_reply,
    kill_group,
    needs_sipp_and_kamailio,
    run_sipp,
    sdp_offer,
    sipp_in_background,
    status,
)

pytestmark = needs_sipp_and_kamailio()

ECHO = ["-s", "dental", "-m", "1", "-key", "pt", "0", "-key", "codec", "PCMU", "-d", "500"]


def test_malformed_requests_get_errors_and_calls_still_work(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("routes:\n  - match: dental\n    agent: dental.yaml\n")
    with gateway_serve(tmp_path, "--config", str(config)) as gw:
        raw = RawSip()
        try:
            p = gw.port
            assert raw.request(os.urandom(300), p, timeout=1.0) is None  # garbage: dropped
            assert raw.request(b"INVITE\r\n\r\n", p, timeout=1.0) is None  # no request line
            no_call_id = invite(p, raw.port, body=sdp_offer(40000), drop=("Call-ID",))
            assert status(raw.request(no_call_id, p, timeout=1.0)) in (400, None)
            no_via = invite(p, raw.port, body=sdp_offer(40000), drop=("Via",))
            assert raw.request(no_via, p, timeout=1.0) is None  # nowhere to answer: dropped
            text_body = invite(p, raw.port, body="hello", content_type="text/plain")
            assert status(raw.request(text_body, p)) == 415
            bad_sdp = invite(p, raw.port, body="v=0\r\nthis is not sdp\r\n")
            assert status(raw.request(bad_sdp, p)) in (400, 488)
            gsm_only = invite(p, raw.port, body=sdp_offer(40000, "3", "a=rtpmap:3 GSM/8000\r\n"))
            assert status(raw.request(gsm_only, p)) == 488
            unknown_agent = invite(p, raw.port, user="nobody", body=sdp_offer(40000))
            assert status(raw.request(unknown_agent, p)) == 404
            message = (
                invite(p, raw.port).replace(b"INVITE ", b"MESSAGE ", 1).replace(b"1 INVITE", b"1 MESSAGE")
            )
            assert status(raw.request(message, p)) == 405
        finally:
            raw.close()
        # After all that, a real call is still answered and carried to the end.
        res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *ECHO)
        assert res.returncode == 0, res.stdout[-2000:]
        (call,) = gw.results(1)
        assert call["agent"] == "dental.yaml" and call["reason"] == "caller_hangup"


def test_capacity_limit_answers_503_with_retry_after(tmp_path: Path) -> None:
    with gateway_serve(tmp_path, "--max-calls", "2") as gw:
        hold = ["-s", "dental", "-m", "2", "-l", "2", "-r", "20", "-key", "pt", "0", "-key", "codec", "PCMU"]
        holder = sipp_in_background(tmp_path, gw.port, "uac_echo.xml", *hold, "-d", "4000")
        try:
            assert gw.wait_started(2)
            reply = invite_reply(gw.port)
            assert status(reply) == 503, reply
            assert reply is not None and header(reply, "Retry-After") == "5"
            assert holder.wait(20) == 0  # the two calls in progress were not disturbed
        finally:
            kill_group(holder)
        res = run_sipp(tmp_path, gw.port, "uac_echo.xml", *ECHO)  # capacity is back
        assert res.returncode == 0, res.stdout[-2000:]
        assert len(gw.results(3)) == 3


def test_allow_list_and_invite_flood_protection(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "sip:\n  allow: [10.0.0.0/8, 192.168.0.0/16]\nroutes: [{match: dental, agent: d.yaml}]\n"
    )
    with gateway_serve(tmp_path / "a", "--config", str(config)) as gw:
        reply = invite_reply(gw.port)
        assert status(reply) == 403
    flood = ["--set", "sip.rate_limit.invites_per_second=1", "--set", "sip.rate_limit.burst=2"]
    with gateway_serve(tmp_path / "b", "--config", str(config), "--set", "sip.allow=[]", *flood) as gw:
        raw = RawSip()
        try:
            replies = [raw.request(invite(gw.port, raw.port, user="x"), gw.port) or "" for _ in range(8)]
        finally:
            raw.close()
        # Unknown user: 404 from a worker while under the limit, then the front refuses the flood.
        assert [r.split("\r\n")[0] for r in replies[:2]] == ["SIP/2.0 404 Not Found"] * 2
        assert "SIP/2.0 503 Rate Limited" in [r.split("\r\n")[0] for r in replies]


def test_digest_authentication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sip_fixtures import gateway_call

    config = tmp_path / "gateway.yaml"
    config.write_text('sip:\n  auth: {username: trunk, password: "${TEST_SIP_SECRET}"}\n')
    secret = "s3cret-Pa55"
    with gateway_serve(tmp_path, "--config", str(config), env={"TEST_SIP_SECRET": secret}) as gw:
        reply = invite_reply(gw.port)
        assert (
            status(reply) == 407
            and reply is not None
            and "Digest" in (header(reply, "Proxy-Authenticate") or "")
        )
        to = f"sip:dental@127.0.0.1:{gw.port}"
        monkeypatch.setenv("GATEWAY_SIP_PASSWORD", secret)
        good = gateway_call("--to", to, "--user", "trunk", "--duration", "0.5")
        monkeypatch.setenv("GATEWAY_SIP_PASSWORD", "wrong")
        bad = gateway_call("--to", to, "--user", "trunk", "--duration", "0.5")
        assert good["answered"] and not bad["answered"]
        assert len(gw.results(1)) == 1
        logs = (tmp_path / "serve.err").read_text() + gw.log("kamailio.log") + gw.log("worker0.log")
    assert secret not in logs
