"""SRTP (`sip.srtp: off | optional | required`) with a real SRTP peer: pjsua2's own caller
(`gateway call --srtp`, SDES keys in the SDP) over TLS to the Kamailio front (sipp has no SRTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sip_fixtures import (
    SPEECH_RMS,
    bare_worker_command,
    caller_wav,
    gateway_call,
    gateway_serve,
    wav_activity,
)
from test_sip_tls import self_signed, tls_config

from gateway.config.errors import ConfigError
from gateway.config.loader import load_gateway_config
from gateway.edges.sip.ports import free_port
from gateway.edges.sip.srtp import offers_srtp, sdp_body

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
)
CRYPTO = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
SAVP_VIDEO = "m=video 4002 RTP/SAVP 96\r\n" + CRYPTO


def call(tmp: Path, tls_port: int, srtp: str, name: str) -> dict:
    return gateway_call(
        "--to", f"sip:dental@127.0.0.1:{tls_port}", "--transport", "tls", "--srtp", srtp,
        "--codec", "PCMU", "--play", str(tmp / "caller.wav"), "--record", str(tmp / f"{name}.wav"),
        "--duration", "2.5",
    )  # fmt: skip


def media_flowed(tmp: Path, name: str, session: dict) -> None:
    """The caller's 600 Hz burst reached the session, the agent's 1000 Hz greeting the caller."""
    speech = [t for t, rms, f in session["frames"] if rms > SPEECH_RMS and abs(f - 600) < 60]
    assert speech and 0.9 <= speech[0] <= 1.2 and len(speech) >= 40
    heard = [t for t, rms, f in wav_activity(tmp / f"{name}.wav") if rms > SPEECH_RMS and abs(f - 1000) < 60]
    assert len(heard) >= 60 and heard[0] <= 0.2


@pytest.mark.parametrize(
    ("sdp", "srtp"),
    [
        (SDP.format(proto="RTP/SAVP", extra=CRYPTO), True),
        (SDP.format(proto="RTP/SAVPF", extra=CRYPTO), True),
        # keys on a plain profile may end in plain RTP (no matching suite): not enough
        (SDP.format(proto="RTP/AVP", extra=CRYPTO), False),
        # DTLS-SRTP: the pjsua2 wheel has none
        (SDP.format(proto="RTP/AVP", extra="a=fingerprint:sha-256 AB:CD\r\n"), False),
        (SDP.format(proto="RTP/AVP", extra=""), False),
        (SDP.format(proto="RTP/AVP", extra="").replace("m=audio 4000", "m=audio 0") + SAVP_VIDEO, False),
        ("", False),  # no offer (an INVITE without SDP): nothing to check keys against
        ("v=0\r\nthis is not sdp", False),
    ],
)
def test_offers_srtp(sdp: str, srtp: bool) -> None:
    assert offers_srtp(sdp) is srtp


def test_sdp_body_of_a_sip_message() -> None:
    assert sdp_body("INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n") == "v=0\r\n"
    assert sdp_body("INVITE sip:x SIP/2.0\r\nContent-Length: 0\r\n") == ""


def test_srtp_setting_reaches_the_worker_account() -> None:
    import pjsua2 as pj

    from gateway.edges.sip.endpoint import account_config
    from gateway.edges.sip.worker import parse_args

    for mode, use in (("off", pj.PJMEDIA_SRTP_DISABLED), ("required", pj.PJMEDIA_SRTP_MANDATORY)):
        options = parse_args(bare_worker_command(5099, f"sip.srtp={mode}")[3:])
        assert options.endpoint.srtp == mode
        acfg = account_config(options.endpoint, 5099)
        assert acfg.mediaConfig.srtpUse == use and acfg.mediaConfig.srtpSecureSignaling == 0
    with pytest.raises(ConfigError, match="srtp"):
        load_gateway_config(None, ["sip.srtp=always"])
    warned = load_gateway_config(None, ["sip.srtp=required"]).warnings
    assert any("sip.srtp" in w and "without tls" in w for w in warned), warned


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["required", "optional"])
def test_srtp_over_tls(tmp_path: Path, mode: str) -> None:
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    config = tls_config(tmp_path, cert, key, tls_port)
    caller_wav(tmp_path / "caller.wav")  # 600 Hz "speech" from 1.0 to 2.0 s
    env = {"SIP_TEST_GREETING": "1000:1.5"}
    with gateway_serve(tmp_path, "--config", str(config), "--set", f"sip.srtp={mode}", env=env) as gw:
        secure = call(tmp_path, tls_port, "required", "secure")
        (session,) = gw.results(1)
        plain = call(tmp_path, tls_port, "off", "plain")
        calls = gw.results(2)
        worker_log = gw.log("worker0.log")
    assert secure["answered"] and secure["extra"]["media_proto"] == "RTP/SAVP", secure
    assert session["reason"] == "caller_hangup"
    media_flowed(tmp_path, "secure", session)
    if mode == "required":
        # plain RTP is refused with 488 and the reason, and never reaches a session
        assert not plain["answered"] and plain["status"] == 488, plain
        assert plain["extra"]["reason"] == "SRTP Required"
        assert len(calls) == 1
        assert "refused (srtp): SRTP required: offer RTP/SAVP" in worker_log, worker_log[-3000:]
    else:
        assert plain["answered"] and plain["extra"]["media_proto"] == "RTP/AVP", plain
        (second,) = [c for c in calls if c["call_id"] != session["call_id"]]
        media_flowed(tmp_path, "plain", second)
