"""Regression tests for the crashes the fuzz targets (tests/test_fuzz_*.py) found, one per crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from sip_fixtures import RawSip, bare_worker, invite, sdp_offer, status


@pytest.mark.slow
def test_refusing_an_invite_without_sdp_does_not_abort_the_worker() -> None:
    # pjsua2 2.15 aborted (assertion in pjsip_rx_data_free_cloned) when a worker refused a
    # late-offer INVITE from inside onIncomingCall: the worker and its calls died.
    with bare_worker("routes=[{match: dental, agent: d.yaml}]") as (port, proc):
        raw = RawSip()
        try:
            for _ in range(3):
                assert status(raw.request(invite(port, raw.port, user="nobody"), port)) == 404
            assert proc.poll() is None, "the worker died"
            reply = raw.request(invite(port, raw.port, body=sdp_offer(raw.port + 2)), port)
            assert status(reply) == 200 and reply is not None
            assert status(raw.ack_and_bye(reply, port)) == 200
        finally:
            raw.close()
        assert proc.poll() is None


class _Routes:
    def route(self, requested: str, callee: str, default: str | None) -> str:
        return "dental"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x80", "application/x-www-form-urlencoded"),  # not UTF-8
        (b"garbage", "multipart/form-data; boundary=b"),  # no starting boundary
    ],
)
async def test_twilio_webhook_answers_400_to_an_unreadable_form(body: bytes, content_type: str) -> None:
    # Both used to raise inside the handler: a 500 and a traceback in the log.
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.edges import mediastream
    from gateway.edges.mediastream import MediaStreamSettings

    app = web.Application()
    mediastream.install(app, _Routes(), MediaStreamSettings(secret="x"))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/twilio/voice", data=body, headers={"Content-Type": content_type})
        assert r.status == 400 and "unreadable form body" in await r.text()
        ok = await client.post("/twilio/voice", data={"CallSid": "CA1", "To": "+1555"})
        assert ok.status == 200 and "<Stream url=" in await ok.text()


def test_a_control_character_in_yaml_names_its_line() -> None:
    # ruamel's ReaderError carries a position, not a line: the error named no line at all.
    from gateway.config.errors import ConfigError
    from gateway.config.yamlsource import parse_yaml

    with pytest.raises(ConfigError) as err:
        parse_yaml("agent: x\ngreeting: hi\x1f\n", file="a.yaml")
    assert err.value.line == 2 and str(err.value).startswith("a.yaml:2: invalid YAML: character")


def test_aliases_of_aliases_are_refused_quickly() -> None:
    # Nine levels of ten aliases each ("billion laughs") used to expand for hours.
    from gateway.config.errors import ConfigError
    from gateway.config.yamlsource import parse_yaml

    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        parse_yaml("\n".join(lines) + "\n", file="bomb.yaml")
    ok = parse_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n")  # ordinary aliases still work
    assert ok.data == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


class _Choice:
    agent = "dental"
    sample_rate = 16000


class _Sessions:
    def choose(self, requested: str, callee: str, default: str | None) -> _Choice:
        return _Choice()


async def test_a_webrtc_offer_without_audio_is_refused_with_a_reason() -> None:
    # aiortc failed to answer an offer whose only stream is a data channel, then failed to close
    # the half-made peer connection as well: a 500 and a traceback.
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from aiortc import RTCPeerConnection

    from gateway.edges import webrtc
    from gateway.edges.webrtc import WebRtcSettings

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    no_audio = "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith("m=audio"))
    app = web.Application()
    edge = webrtc.install(app, _Sessions(), WebRtcSettings(addresses=["127.0.0.1"]))  # type: ignore[arg-type]
    token, _ = edge.tokens.mint("")
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/webrtc/offer", json={"sdp": no_audio, "type": "offer", "token": token})
        assert r.status == 400 and (await r.json())["error"] == "the offer has no audio stream"


@pytest.mark.slow
def test_offers_that_abort_pjsua2_are_refused_at_the_front(tmp_path: Path) -> None:
    # pjsua2 keeps two sockets per media line of every offer a worker has answered and aborted
    # (pj_ioqueue_register_sock2, then sdp_neg create_answer) once its I/O queue was full: a few
    # INVITEs of 8 m= lines killed a worker and its calls.
    from sip_fixtures import gateway_serve, header

    base = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    line = "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    with gateway_serve(tmp_path) as gw:
        raw = RawSip()
        try:
            for n in (8, 4, 30, 8, 8, 8):
                reply = raw.request(invite(gw.port, raw.port, body=base + line * n), gw.port)
                assert reply is not None and reply.startswith("SIP/2.0 488 Too Many Media Streams"), reply
            for lf in (False, True):  # LF line ends are caught too
                body = (base + line * 5).replace("\r\n", "\n") if lf else base + line * 5
                assert status(raw.request(invite(gw.port, raw.port, body=body), gw.port)) == 488
            # no c= line and a disabled stream: pjsua2 aborted on its answer (sdp_neg create_answer)
            no_c = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
            reply = raw.request(invite(gw.port, raw.port, body=no_c), gw.port)
            assert reply is not None and reply.startswith("SIP/2.0 400 Bad SDP: no connection address")
            reply = raw.request(invite(gw.port, raw.port, body=base + line * 3), gw.port)
            assert status(reply) == 200 and reply is not None and header(reply, "contact")
        finally:
            raw.close()
        assert "exited" not in (tmp_path / "serve.err").read_text()
