"""Secure by default: offer tokens for WebRTC, /metrics restrictions, and `gateway serve` refusing
to expose unauthenticated edges beyond loopback; refused attempts leave a log line, a counter and
a row (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection
from session_fixtures import dental_agent_yaml, loopback_runtime
from sqlalchemy import select

from gateway.config.schema import GatewayConfig, HttpConfig
from gateway.edges import mediastream, webrtc
from gateway.edges.mediastream import MediaStreamSettings
from gateway.edges.webrtc import OfferTokens, WebRtcEdge, WebRtcSettings, make_offer_token
from gateway.http.app import MetricsAccess, create_app
from gateway.http.exposure import exposure_problems
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.tables import RefusedAttempt
from gateway.runtime import GatewayRuntime
from tests.test_metrics_http import _samples

AGENT = dental_agent_yaml("security-test", "tts: {provider: espeak-ng}\n")


# -- tokens ----------------------------------------------------------------------------------------


def test_offer_tokens_are_per_agent_short_lived_and_single_use() -> None:
    now = [1000.0]
    tokens = OfferTokens("k", ttl=60, clock=lambda: now[0])
    token, expires = tokens.mint("dental")
    assert expires == 1060
    assert tokens.check(token, "other") == "bad token signature (or a token for another agent)"
    assert tokens.check(token, "dental") is None
    assert tokens.check(token, "dental") == "token already used"
    # an operator's web app mints with the same secret
    assert tokens.check(make_offer_token("k", "dental", ttl=5, now=now[0]), "dental") is None
    assert tokens.check(make_offer_token("wrong key", "dental", now=now[0]), "dental") is not None
    late, _ = tokens.mint("")
    now[0] += 61
    assert tokens.check(late, "") == "token expired"
    assert tokens.check("12.ab", "") == "malformed token"
    assert tokens.check("12.ab.cd.ef", "") == "malformed token"
    assert tokens.check("", "") == "malformed token"
    assert OfferTokens().secret != OfferTokens().secret  # random per process without a secret


# -- exposure ------------------------------------------------------------------------------------


def _config(**sections: object) -> GatewayConfig:
    return GatewayConfig.model_validate(sections)


def test_loopback_needs_nothing() -> None:
    assert exposure_problems(GatewayConfig(), env={}) == []


def test_sip_beyond_loopback_needs_allow_or_auth() -> None:
    problems = exposure_problems(_config(sip={"host": "0.0.0.0"}), env={})
    assert [p for p, _ in problems] == [("sip", "host")]
    assert "neither sip.allow nor sip.auth" in problems[0][1]
    for sip in (
        {"host": "0.0.0.0", "allow": ["203.0.113.0/24"]},
        {"host": "0.0.0.0", "auth": {"username": "u", "password": "p"}},
        {"host": "0.0.0.0", "allow_unauthenticated": True},
    ):
        assert exposure_problems(_config(sip=sip), env={}) == []


def test_http_beyond_loopback_needs_every_edge_authenticated() -> None:
    problems = exposure_problems(_config(http={"host": "0.0.0.0"}), env={})
    assert [p for p, _ in problems] == [("mediastream", "secret"), ("http", "metrics")]
    secured = {
        "http": {"host": "0.0.0.0", "metrics": {"allow": ["10.0.0.0/8"]}},
        "mediastream": {"secret": "s3cret"},
    }
    assert exposure_problems(_config(**secured), env={}) == []
    # the same from the environment
    env = {"GATEWAY_MEDIA_SECRET": "x", "GATEWAY_METRICS_TOKEN": "y"}
    assert exposure_problems(_config(http={"host": "192.0.2.7"}), env=env) == []
    open_demo = {**secured, "webrtc": {"open_demo": True}}
    assert [p for p, _ in exposure_problems(_config(**open_demo), env={})] == [("webrtc", "open_demo")]
    allowed = {"http": {"host": "0.0.0.0", "allow_unauthenticated": True}, "webrtc": {"open_demo": True}}
    assert exposure_problems(_config(**allowed), env={}) == []
    # `gateway serve --session` serves no HTTP
    assert exposure_problems(_config(http={"host": "0.0.0.0"}), env={}, http=False) == []


def test_serve_refuses_to_start_exposed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--set", "http.host=0.0.0.0", "--sip-host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.returncode == 2, result.stderr
    assert "sip.host: listening on 0.0.0.0 with neither sip.allow nor sip.auth" in result.stderr
    assert "mediastream.secret: media streams on 0.0.0.0 are not authenticated" in result.stderr
    assert "http.metrics: /metrics on 0.0.0.0 is open to anyone" in result.stderr
    assert "Traceback" not in result.stderr


# -- /metrics --------------------------------------------------------------------------------------


async def test_metrics_by_token_and_address() -> None:
    metrics = GatewayMetrics()
    app = create_app(
        metrics, metrics_access=MetricsAccess.from_config(HttpConfig(metrics={"token": "t0k"}).metrics)
    )
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer t0k"})
        assert ok.status == 200 and "gateway_active_calls" in await ok.text()
        assert (await client.get("/healthz")).status == 200  # health stays open
    for allow, status in ((["127.0.0.0/8"], 200), (["10.0.0.0/8", "::1/128"], 403)):
        access = MetricsAccess.from_config(HttpConfig(metrics={"allow": allow}).metrics, env={})
        async with TestClient(
            TestServer(create_app(metrics, metrics_access=access), host="127.0.0.1")
        ) as client:
            assert (await client.get("/metrics")).status == status
    with pytest.raises(ValueError, match="CIDR"):
        HttpConfig(metrics={"allow": ["not a network"]})


# -- WebRTC offers ---------------------------------------------------------------------------------


@dataclass
class Served:
    runtime: GatewayRuntime
    edge: WebRtcEdge
    base: str
    db_url: str


async def _serve(tmp_path: Path, db_url: str, settings: WebRtcSettings) -> AsyncIterator[Served]:
    runtime = loopback_runtime(tmp_path, AGENT, db_url)
    metrics = runtime.metrics_service()
    await metrics.start()
    http = runtime.http_service()
    edge = webrtc.install(http.app, runtime.runner, settings)
    mediastream.install(http.app, runtime.runner, MediaStreamSettings(secret="s3cret", start_timeout=2))
    await http.start()
    try:
        yield Served(runtime, edge, f"http://127.0.0.1:{http.port}", db_url)
    finally:
        await http.stop()
        await metrics.stop()


@pytest.fixture
async def served(tmp_path: Path, migrated_url: str) -> AsyncIterator[Served]:
    async for s in _serve(tmp_path, migrated_url, WebRtcSettings(addresses=["127.0.0.1"])):
        yield s


def _refused_counts(metrics: dict[tuple[str, Any], float]) -> dict[Any, float]:
    """gateway_call_attempts_refused_total by its labels."""
    return {
        labels: v for (name, labels), v in metrics.items() if name == "gateway_call_attempts_refused_total"
    }


async def _refused_rows(served: Served, *columns: Any) -> list[Any]:
    """The call_attempts_refused rows the writer has stored (flushed first), in order."""
    writer = served.runtime.writer
    assert writer is not None
    await writer.flush()
    engine = create_db_engine(served.db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(*columns).order_by(RefusedAttempt.id)).all())
    finally:
        engine.dispose()


async def _offer_sdp() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_offers_need_a_token_and_refusals_are_recorded(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    sdp = await _offer_sdp()
    async with ClientSession() as http:
        with caplog.at_level(logging.WARNING, logger="gateway.calls"):
            r = await http.post(f"{served.base}/webrtc/offer", json={"sdp": sdp, "type": "offer"})
            assert r.status == 401 and (await r.json())["reason"] == "auth"
            assert "webrtc call attempt refused (auth, 401): no offer token" in caplog.text
        r = await http.post(f"{served.base}/webrtc/offer", json={"sdp": sdp, "type": "offer", "token": "1.x"})
        assert r.status == 401
        config = await (await http.get(f"{served.base}/webrtc/config")).json()
        assert config["tokens"] == "loopback"  # the demo: no set-up, browsers on this host only
        proxied = await http.post(
            f"{served.base}/webrtc/token", json={}, headers={"X-Forwarded-For": "192.0.2.1"}
        )
        assert proxied.status == 403  # a proxy on this host: not a local browser
        token = (await (await http.post(f"{served.base}/webrtc/token", json={"agent": ""})).json())["token"]
        # a token for the default agent does not open another agent
        r = await http.post(
            f"{served.base}/webrtc/offer", json={"sdp": sdp, "type": "offer", "agent": "x", "token": token}
        )
        assert r.status == 401
        # codecs: the edge here takes PCMU/PCMA only
        served.edge.settings = WebRtcSettings(addresses=["127.0.0.1"], codecs=["PCMU", "PCMA"])
        only_opus = _drop_codecs(sdp, keep="opus")
        r = await http.post(
            f"{served.base}/webrtc/offer",
            json={"sdp": only_opus, "type": "offer", "token": token},
        )
        assert r.status == 400 and (await r.json())["reason"] == "codec"
        served.edge.settings = WebRtcSettings(addresses=["127.0.0.1"])
        token = (await (await http.post(f"{served.base}/webrtc/token", json={})).json())["token"]
        r = await http.post(
            f"{served.base}/webrtc/offer",
            headers={"Authorization": f"Bearer {token}"},
            json={"sdp": sdp, "type": "offer"},
        )
        assert r.status == 200, await r.text()
        call_id = (await r.json())["id"]
        r = await http.post(f"{served.base}/webrtc/offer", json={"sdp": sdp, "type": "offer", "token": token})
        assert r.status == 401 and "already used" in (await r.json())["error"]
        await http.post(f"{served.base}/webrtc/hangup", json={"id": call_id})
        metrics = _samples(await (await http.get(f"{served.base}/metrics")).text())
    assert _refused_counts(metrics) == {
        (("edge", "webrtc"), ("reason", "auth")): 5,
        (("edge", "webrtc"), ("reason", "codec")): 1,
    }
    rows = await _refused_rows(
        served, RefusedAttempt.edge, RefusedAttempt.reason, RefusedAttempt.status, RefusedAttempt.detail
    )
    assert [(e, r, s) for e, r, s, _ in rows] == [
        ("webrtc", "auth", 401),
        ("webrtc", "auth", 401),
        ("webrtc", "auth", 403),
        ("webrtc", "auth", 401),
        ("webrtc", "codec", 400),
        ("webrtc", "auth", 401),
    ]
    assert rows[4][3].startswith("offer has only opus")


async def test_media_stream_refusals_are_recorded(served: Served) -> None:
    ws_base = served.base.replace("http://", "ws://")
    async with ClientSession() as http:
        r = await http.get(f"{ws_base}/media/twilio?token=wrong")
        assert r.status == 403
        # no credentials at the handshake, none in the start message either
        async with http.ws_connect(f"{ws_base}/media/twilio") as ws:
            start = {
                "event": "start",
                "streamSid": "MZ1",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": "CA1",
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {},
                },
            }
            await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await ws.send_json(start)
            await ws.receive()
            assert ws.close_code == 1008
        # a stream that never starts
        async with http.ws_connect(f"{ws_base}/media/twilio?token=s3cret") as ws:
            await ws.receive()
        metrics = _samples(await (await http.get(f"{served.base}/metrics")).text())
    assert _refused_counts(metrics) == {
        (("edge", "mediastream"), ("reason", "auth")): 2,
        (("edge", "mediastream"), ("reason", "bad_request")): 1,
    }
    rows = await _refused_rows(served, RefusedAttempt.reason, RefusedAttempt.status, RefusedAttempt.detail)
    assert [(r, s) for r, s, _ in rows] == [("auth", 403), ("auth", 1008), ("bad_request", 1008)]
    assert rows[0][2] == "bad token signature" or "token" in rows[0][2]


async def test_carrier_dtmf_is_a_call_event(served: Served) -> None:
    import base64

    from gateway.metrics.tables import CallEvent

    ws_base = served.base.replace("http://", "ws://")
    silence = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of mu-law silence

    def media(n: int) -> list[dict[str, object]]:
        return [{"event": "media", "streamSid": "MZ2", "media": {"payload": silence}} for _ in range(n)]

    start = {
        "event": "start",
        "streamSid": "MZ2",
        "start": {
            "streamSid": "MZ2",
            "callSid": "CA2",
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {},
        },
    }
    async with ClientSession() as http, http.ws_connect(f"{ws_base}/media/twilio?token=s3cret") as ws:
        messages = [{"event": "connected", "protocol": "Call", "version": "1.0.0"}, start, *media(25)]
        messages += [{"event": "dtmf", "streamSid": "MZ2", "dtmf": {"track": "inbound_track", "digit": "7"}}]
        messages += [*media(25), {"event": "stop", "streamSid": "MZ2"}]
        for message in messages:
            await ws.send_json(message)
        while not ws.closed:
            await ws.receive()
    writer = served.runtime.writer
    assert writer is not None
    engine = create_db_engine(served.db_url)
    try:
        for _ in range(50):  # the session ends after the socket: until its rows are written
            await writer.flush()
            with engine.connect() as conn:
                rows = conn.execute(
                    select(CallEvent.kind, CallEvent.value, CallEvent.detail, CallEvent.offset_s)
                ).all()
            if rows:
                break
            await asyncio.sleep(0.1)
    finally:
        engine.dispose()
    ((kind, value, detail, offset),) = rows
    assert (kind, value, detail) == ("dtmf", "7", "twilio") and abs(offset - 0.5) < 0.05


def _drop_codecs(sdp: str, keep: str) -> str:
    lines = sdp.split("\r\n")
    out = []
    kept_pts: list[str] = []
    for line in lines:
        if line.startswith("a=rtpmap:"):
            pt, name = line[len("a=rtpmap:") :].split(" ", 1)
            if name.lower().startswith(keep):
                kept_pts.append(pt)
    for line in lines:
        if line.startswith("m=audio "):
            head = line.split(" ")[:3]
            line = " ".join(head + kept_pts)
        elif line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            pt = line.split(":", 1)[1].split(" ", 1)[0]
            if pt not in kept_pts:
                continue
        out.append(line)
    return "\r\n".join(out)


async def test_page_password(tmp_path: Path) -> None:
    settings = WebRtcSettings(addresses=["127.0.0.1"], page_password="open sesame")
    db_url = f"sqlite:///{tmp_path / 'm.db'}"
    schema.upgrade(db_url)
    async for s in _serve(tmp_path, db_url, settings):
        async with ClientSession() as http:
            assert (await (await http.get(f"{s.base}/webrtc/config")).json())["tokens"] == "password"
            r = await http.post(f"{s.base}/webrtc/token", json={"agent": "dental"})
            assert r.status == 401 and (await r.json())["password"] is True
            r = await http.post(f"{s.base}/webrtc/token", json={"agent": "dental", "password": "guess"})
            assert r.status == 401
            r = await http.post(f"{s.base}/webrtc/token", json={"agent": "dental", "password": "open sesame"})
            assert r.status == 200
            assert s.edge.tokens.check((await r.json())["token"], "dental") is None
            # guessing is limited per address, the right password included
            statuses = [
                (await http.post(f"{s.base}/webrtc/token", json={"password": f"guess{i}"})).status
                for i in range(5)
            ]
            assert statuses == [401, 401, 401, 401, 429]
            r = await http.post(f"{s.base}/webrtc/token", json={"password": "open sesame"})
            assert r.status == 429 and (await r.json())["reason"] == "rate_limit"
        closed = WebRtcSettings(addresses=["127.0.0.1"], open_demo=False)
        s.edge.settings = closed
        async with ClientSession() as http:
            assert (await http.post(f"{s.base}/webrtc/token", json={})).status == 403


def test_sip_refusal_reasons_from_the_offer() -> None:
    from gateway.edges.sip.refusals import classify, common_codecs, media_family, offered_codecs, sip_call_id

    invite = (
        "INVITE sip:dental@127.0.0.1 SIP/2.0\r\nCall-ID: abc@host\r\nContent-Type: application/sdp\r\n\r\n"
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 111 0 101\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    assert sip_call_id(invite) == "abc@host" and media_family(invite.split("\r\n\r\n")[1]) == "IP6"
    assert classify(488, "Not Acceptable Here", invite)[0] == "media_address_family"
    ipv4 = invite.replace("IP6 ::1", "IP4 127.0.0.1")
    sdp = ipv4.split("\r\n\r\n")[1]
    assert offered_codecs(sdp) == ["opus/48000/2", "PCMU/8000"]  # static payload 0 without rtpmap
    assert common_codecs(offered_codecs(sdp), ["PCMA", "PCMU"]) == ["PCMU"]
    assert classify(488, "", ipv4) == ("codec", "no codec in common: the offer has opus/48000/2, PCMU/8000")
    assert classify(400, "Bad Request", "")[0] == "bad_request"


def test_front_refusal_lines() -> None:
    from gateway.edges.sip.front_refusals import parse_refusal

    line = " 3(4711) WARNING: <script>: front: refused rate_limit 503 from 192.0.2.9 call abc@h: INVITE flood"
    attempt = parse_refusal(line)
    assert attempt is not None
    assert (attempt.edge, attempt.reason, attempt.status, attempt.caller, attempt.call_id) == (
        "sip",
        "rate_limit",
        503,
        "192.0.2.9",
        "abc@h",
    )
    assert attempt.detail == "front: INVITE flood"
    assert parse_refusal("front: malformed INVITE from 192.0.2.9:5060 dropped or refused") is None


async def test_following_the_front_log(tmp_path: Path) -> None:
    from gateway.edges.sip.front_refusals import follow_front_refusals

    seen: list[object] = []

    class Sessions:
        def refused(self, attempt: object) -> None:
            seen.append(attempt)

    log = tmp_path / "kamailio.log"
    log.write_text("front: refused auth 403 from 10.0.0.1 call old: before we started\n")
    task = asyncio.create_task(follow_front_refusals(log, Sessions(), poll=0.01))
    await asyncio.sleep(0)  # the follower takes the log's current end before its first wait
    with log.open("a") as f:
        f.write("noise\nfront: refused capacity 503 from 10.0.0.2 call c1: no worker up\nfront: refused rate")
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0.01)  # the follower polls the file
        with log.open("a") as f:
            f.write("_limit 503 from 10.0.0.3 call c2: INVITE flood\n")
        while len(seen) < 2:
            await asyncio.sleep(0.01)
    log.unlink()  # a front that went away does not stop the follower
    await asyncio.sleep(0.05)  # a few of its polls
    assert not task.done()
    task.cancel()
    assert [(a.reason, a.caller) for a in seen] == [("capacity", "10.0.0.2"), ("rate_limit", "10.0.0.3")]  # type: ignore[attr-defined]


def test_check_config_warns_what_serve_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    path = tmp_path / "gw.yaml"
    path.write_text("http:\n  host: 0.0.0.0\n  metrics: {allow: [10.0.0.0/8]}\nroutes: []\n")
    assert main(["check-config", str(path)]) == 0  # valid, but...
    err = capsys.readouterr().err
    assert (
        f"{path}:1: mediastream.secret: warning: gateway serve refuses this: media streams on 0.0.0.0" in err
    )
    assert "http.metrics" not in err
