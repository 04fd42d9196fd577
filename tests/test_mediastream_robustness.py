"""Bad input on the media-stream edge closes or is skipped with a reason, never taking down the
server or other calls; stream authentication (secrets, signed tokens, Twilio signatures)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import numpy as np
import pytest
from audio_fixtures import espeak, place
from carrier_simulator import CarrierSimulator
from test_mediastream_replay import Gateway, StartGateway, start_gateway  # noqa: F401  (fixture)

from gateway.edges.mediastream import MediaStreamSettings, auth

START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ1",
    "start": {
        "streamSid": "MZ1",
        "callSid": "CA1",
        "accountSid": "AC1",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {},
    },
}
SILENCE = base64.b64encode(b"\xff" * 160).decode()


def media(payload: str = SILENCE, sid: str = "MZ1") -> str:
    return json.dumps({"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": payload}})


def start(sid: str = "MZ1", call: str = "CA1", **params: str) -> str:
    msg = json.loads(json.dumps(START))
    msg["streamSid"] = msg["start"]["streamSid"] = sid
    msg["start"]["callSid"] = call
    msg["start"]["customParameters"] = params
    return json.dumps(msg)


async def exchange(
    gw: Gateway, path: str, messages: list[str | bytes], **kw: object
) -> tuple[int | None, str]:
    """Send `messages`, then stop (if still open); the close code and the edge's logged reason."""
    before = len(gw.edge.closed)
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.url(path), **kw) as ws:  # type: ignore[arg-type]
        for message in messages:
            if ws.closed:
                break
            await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
        if not ws.closed:
            await ws.send_str(json.dumps({"event": "stop", "streamSid": "MZ1"}))
        async for _ in ws:
            pass
        code = ws.close_code
    closed = await gw.edge.wait_closed(before + 1)
    return code, closed[before].reason


@pytest.fixture
async def gw(start_gateway: StartGateway) -> Gateway:  # noqa: F811
    return await start_gateway(settings=MediaStreamSettings(start_timeout=1.0, max_bad_messages=5))


@pytest.mark.parametrize(
    ("messages", "code", "reason"),
    [
        (["{not json"], 1008, "before start: malformed JSON"),
        (["[1, 2]"], 1008, "before start: first message is not a JSON object"),
        ([media()], 1008, "'media' before start"),
        ([b"\x00\x01" * 80], 1008, "before start: binary audio before any start message"),
        (
            [json.dumps({"event": "start", "start": {}})],
            1008,
            "before start: start message of no known carrier",
        ),
        (
            [json.dumps({**START, "start": {**START["start"], "mediaFormat": {"encoding": "audio/opus"}}})],  # type: ignore[dict-item]
            1008,
            "unsupported media encoding",
        ),
    ],
)
async def test_bad_openings_close_with_a_reason(gw: Gateway, messages: list, code: int, reason: str) -> None:
    got_code, got_reason = await exchange(gw, "/media", messages)
    assert got_code == code and reason in got_reason


async def test_missing_start_times_out(gw: Gateway) -> None:
    before = len(gw.edge.closed)
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.url("/media")) as ws:
        await ws.send_str(json.dumps({"event": "connected"}))  # Exotel/Telnyx-style: undecided yet
        msg = await ws.receive()  # the server closes it
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    (closed,) = list(await gw.edge.wait_closed(before + 1))[before:]
    assert closed.code == 1008 and closed.reason == "no start within 1 s"


async def test_forced_dialect_refuses_another_carriers_start(gw: Gateway) -> None:
    code, reason = await exchange(gw, "/media/telnyx", [start()])
    assert code == 1008 and "no stream_id" in reason


async def test_bad_messages_after_start_are_skipped(gw: Gateway) -> None:
    messages: list[str | bytes] = [start()]
    messages += [media() for _ in range(10)]
    messages += [
        "{oops",
        json.dumps({"event": "teleport", "streamSid": "MZ1"}),
        media("!!!not base64!!!"),
        media(base64.b64encode(b"\xff" * 8001).decode()),  # over 1 s of audio in one message
        start(),  # duplicate
        json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": "not-ours"}}),
    ]
    messages += [media() for _ in range(10)]
    code, reason = await exchange(gw, "/media", messages)
    assert code == 1000 and reason == "call ended"
    for kind in (
        "bad message",
        "unknown event 'teleport'",
        "oversized media (8001 bytes)",
        "duplicate start",
    ):
        assert gw.edge.skipped[kind] >= 1, kind
    (call,) = gw.edge.finished
    assert call.transport.frames_in == 20


async def test_a_run_of_garbage_closes_the_stream(gw: Gateway) -> None:
    code, reason = await exchange(gw, "/media", [start(), *["{x"] * 6])
    assert code == 1003 and reason == "5 unusable messages in a row"


async def test_oversized_websocket_message_closes_with_1009(start_gateway: StartGateway) -> None:  # noqa: F811
    gw = await start_gateway(settings=MediaStreamSettings(max_message_bytes=4096))
    code, reason = await exchange(gw, "/media", [start(), media(base64.b64encode(b"\xff" * 8000).decode())])
    assert code == 1009 and "oversized message" in reason


async def test_bad_streams_do_not_disturb_a_good_call(gw: Gateway) -> None:
    caller = place(4.0, [(1.0, espeak("hello there", rate=8000))])
    good = asyncio.create_task(CarrierSimulator(gw.url("/media"), "twilio", caller, speed=2.0).run())
    bad = [
        exchange(gw, "/media", ["{not json"]),
        exchange(gw, "/media", [media()]),
        exchange(gw, "/media", [start("MZ2", "CA2"), *["{x"] * 6]),
        exchange(
            gw, "/media/vonage", [json.dumps({"event": "websocket:connected", "content-type": "audio/pcm"})]
        ),
    ]
    results = await asyncio.gather(*bad)
    assert all(code in (1003, 1008) for code, _ in results)
    result = await good
    assert result.close_code == 1000
    closed = await gw.edge.wait_closed(5)
    assert [c.reason for c in closed if c.call_id.startswith("twilio:MZ") and c.code == 1000] == [
        "call ended"
    ]
    call = next(c for c in gw.edge.finished if c.transport.frames_in > 100)
    assert any(e.type == "user_speech_start" for e in call.observer.events)
    assert np.any(result.agent())  # the agent's greeting reached the good caller


# -- authentication ---------------------------------------------------------------------------


SECRET = "s3cret-for-tests"


@pytest.fixture
async def locked(start_gateway: StartGateway) -> Gateway:  # noqa: F811
    return await start_gateway(settings=MediaStreamSettings(secret=SECRET, twilio_auth_token="12345"))


async def test_no_credentials_is_rejected_at_start(locked: Gateway) -> None:
    code, reason = await exchange(locked, "/media", [start()])
    assert (
        code == 1008 and reason == "unauthenticated: no credentials at the handshake or in the start message"
    )


async def test_bad_token_is_refused_at_the_handshake(locked: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(locked.url("/media?token=nope"))
    assert err.value.status == 403
    (closed,) = await locked.edge.wait_closed(1)
    assert closed.reason == "malformed token"
    assert locked.edge.rejections["malformed token"] == 1


async def test_signed_tokens(locked: Gateway) -> None:
    now = time.time()
    good = auth.make_token(SECRET, ttl=60, now=now)
    assert (await exchange(locked, f"/media?token={good}", [start(), media()]))[1] == "call ended"
    bound = auth.make_token(SECRET, scope="CA7", ttl=60, now=now)
    assert (await exchange(locked, "/media", [start("MZ7", "CA7", token=bound), media()]))[1] == "call ended"
    code, reason = await exchange(locked, "/media", [start("MZ8", "CA8", token=bound)])
    assert code == 1008 and reason == "unauthenticated: bad token signature"  # bound to another call
    expired = auth.make_token(SECRET, ttl=-1, now=now)
    code, reason = await exchange(locked, "/media", [start("MZ9", "CA9", token=expired)])
    assert reason == "unauthenticated: token expired"
    headers = {"Authorization": f"Bearer {SECRET}"}
    assert (await exchange(locked, "/media", [start("MZA", "CAA"), media()], headers=headers))[
        1
    ] == "call ended"


def test_twilio_signature_matches_the_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert auth.twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


async def test_twilio_webhook_answers_connect_stream_with_a_bound_token(locked: Gateway) -> None:
    url = f"http://127.0.0.1:{locked.port}/twilio/voice"
    form = {"CallSid": "CA42", "From": "+15550001111", "To": "+15550002222", "AccountSid": "AC1"}
    async with aiohttp.ClientSession() as http:
        signed = {"X-Twilio-Signature": auth.twilio_signature("12345", url, form)}
        async with http.post(url, data=form, headers=signed) as r:
            assert r.status == 200 and r.content_type == "application/xml"
            twiml = await r.text()
        async with http.post(url, data=form, headers={"X-Twilio-Signature": "AAAA"}) as r:
            assert r.status == 403
        async with http.post(url, data={**form, "To": "+1999"}, headers=signed) as r:
            assert r.status == 403  # parameters changed after signing
    assert f'<Stream url="ws://127.0.0.1:{locked.port}/media/twilio">' in twiml
    token = twiml.split('name="token" value="')[1].split('"')[0]
    assert auth.verify_token(SECRET, token, scope="CA42").ok
    # the stream Twilio opens with it is accepted
    assert (await exchange(locked, "/media/twilio", [start("MZ42", "CA42", token=token), media()]))[
        1
    ] == "call ended"


async def test_twilio_signed_stream_handshake(locked: Gateway) -> None:
    url = locked.url("/media/twilio")
    headers = {"X-Twilio-Signature": auth.twilio_signature("12345", url)}
    assert (await exchange(locked, "/media/twilio", [start(), media()], headers=headers))[1] == "call ended"
