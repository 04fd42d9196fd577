"""Fuzzing the HTTP edges live: every carrier dialect's media-stream messages over real
WebSockets, Twilio webhook form bodies and WebRTC offer bodies, while a carrier call is in
progress; and each dialect's parser on its own, at a larger count.

The gateway (the runtime's HTTP app with both edges, the dental agent with espeak-ng) runs on its
own event loop in a thread, as in `gateway serve`; the cases are sent from the test's thread. After
the cases: the call in progress got every frame it sent, with none dropped, and ended normally;
a fresh call works; nothing was logged as an unhandled exception.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import pytest
from fuzz_fixtures import CASES, count, fuzz_settings, report
from fuzz_http import DIALECTS, any_message, offer_bodies, stream_messages, webhook_bodies
from hypothesis import given
from session_fixtures import dental_agent_yaml

from gateway.audio import g711
from gateway.config.schema import DatabaseConfig, GatewayConfig, HttpConfig
from gateway.edges import mediastream, webrtc
from gateway.edges.mediastream import MediaStreamEdge, MediaStreamSettings
from gateway.edges.mediastream.dialects import DIALECTS as DIALECT_CLASSES
from gateway.edges.mediastream.dialects import ProtocolError, detect
from gateway.edges.webrtc import WebRtcEdge, WebRtcSettings
from gateway.runtime import GatewayRuntime

T = TypeVar("T")
CLOSE_CODES = {1000, 1003, 1008, 1009}  # normal, unusable data, policy, too big: never 1011


class Unhandled(logging.Handler):
    """Log records of errors and exceptions, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


class LiveGateway:
    """The HTTP app of a runtime on an event loop in its own thread."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _, ctx: self.loop_errors.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self.thread.start()
        self.port = 0
        self.media: MediaStreamEdge
        self.webrtc: WebRtcEdge

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        agent = self.tmp / "agent.yaml"
        agent.write_text(dental_agent_yaml("fuzz", "tts: {provider: espeak-ng}\n", vad_rate=8000))
        config = GatewayConfig(
            default_agent=str(agent),
            database=DatabaseConfig(url="sqlite://", spool_dir=str(self.tmp / "spool")),
        ).model_copy(update={"http": HttpConfig.model_construct(host="127.0.0.1", port=0)})
        self.runtime = GatewayRuntime(config, None)
        self.http = self.runtime.http_service()
        settings = MediaStreamSettings(start_timeout=1.0, max_bad_messages=5)
        self.media = mediastream.install(self.http.app, self.runtime.runner, settings)
        rtc = WebRtcSettings(addresses=["127.0.0.1"], connect_timeout=2.0)
        self.webrtc = webrtc.install(self.http.app, self.runtime.runner, rtc)
        await self.http.start()
        self.port = self.http.port

    async def stop(self) -> None:
        await self.http.stop()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveGateway, Unhandled]]:
    errors = Unhandled()
    logging.getLogger().addHandler(errors)
    gw = LiveGateway(tmp_path)
    try:
        gw.run(gw.start())
        yield gw, errors
    finally:
        try:
            gw.run(gw.stop())
        finally:
            gw.loop.call_soon_threadsafe(gw.loop.stop)
            gw.thread.join(10)
            logging.getLogger().removeHandler(errors)


class GoodCall:
    """A Twilio stream sending a 600 Hz tone in real time (20 ms per message) until stopped."""

    def __init__(self, gw: LiveGateway, sid: str = "MZgood") -> None:
        self.url, self.sid = gw.url("/media/twilio", "ws"), sid
        self.stop = threading.Event()
        self.sent = 0
        self.agent_media = 0
        self.close_code: int | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="good call")

    async def _run(self) -> None:
        t = np.arange(160) / 8000
        payload = base64.b64encode(
            g711.encode((np.sin(2 * np.pi * 600 * t) * 10000).astype(np.int16), "ulaw").tobytes()
        ).decode()
        start = {
            "event": "start",
            "streamSid": self.sid,
            "start": {
                "streamSid": self.sid,
                "callSid": "CA" + self.sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {},
            },
        }
        media = json.dumps({"event": "media", "streamSid": self.sid, "media": {"payload": payload}})
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url) as ws:

            async def read() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT and '"media"' in msg.data:
                        self.agent_media += 1

            reader = asyncio.create_task(read())
            await ws.send_str(json.dumps(start))
            t0 = loop.time()
            while not self.stop.is_set():
                await ws.send_str(media)
                self.sent += 1
                await asyncio.sleep(max(0.0, t0 + self.sent * 0.02 - loop.time()))  # a carrier's pace
            await ws.send_str(json.dumps({"event": "stop", "streamSid": self.sid}))
            await reader
            self.close_code = ws.close_code

    def __enter__(self) -> GoodCall:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


async def stream(url: str, messages: list[str | bytes]) -> int | None:
    """Send one stream's messages (as far as the gateway lets us), then close; the close code."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for message in messages:
            if ws.closed:
                break
            try:
                await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
            except ConnectionError:
                break
        if not ws.closed:
            await ws.close()
        return ws.close_code


async def post(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    headers = {"Content-Type": content_type} if content_type else {}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text(errors="replace")


async def closed_after(edge: MediaStreamEdge, last: Any) -> Any:
    """The first close the edge recorded after `last` (its newest record before; None: none).
    `edge.closed` keeps the last 1000, so records are found by identity, not by count."""
    event = edge._closed_event
    while True:
        event.clear()
        records = list(edge.closed)
        index = next((i for i, r in enumerate(records) if r is last), -1) if last is not None else -1
        if index + 1 < len(records):
            return records[index + 1]
        await event.wait()


def newest(edge: MediaStreamEdge) -> Any:
    return edge.closed[-1] if edge.closed else None


def wait_finished(gw: LiveGateway, call_id: str) -> Any:
    async def until() -> Any:  # the close is recorded after the call is finished
        event = gw.media._closed_event
        while True:
            event.clear()
            if any(c.call_id == call_id for c in gw.media.closed):
                return next(c for c in gw.media.finished if c.call_id == call_id)
            await event.wait()

    return gw.run(until(), timeout=30)


def check_good_call(gw: LiveGateway, good: GoodCall) -> None:
    call = wait_finished(gw, f"twilio:{good.sid}")
    assert good.close_code == 1000
    assert call.transport.frames_in == good.sent and call.transport.dropped == 0
    assert good.agent_media > 0  # the agent's greeting reached the caller
    assert [c.reason for c in gw.media.closed if c.call_id == f"twilio:{good.sid}"] == ["call ended"]


def check_logs(gw: LiveGateway, errors: Unhandled) -> None:
    assert not gw.loop_errors, gw.loop_errors[:3]
    bad = [r for r in errors.records if r.exc_info]
    assert not bad, [logging.Formatter().format(r) for r in bad[:3]]


def fuzz_streams(gw: LiveGateway, dialect: str) -> None:
    """One target: streams of `dialect`'s messages, to its own path and to /media (detected)."""
    target = f"mediastream-{dialect}"

    @fuzz_settings(20)
    @given(stream_messages(dialect))
    def one_stream(messages: list[str | bytes]) -> None:
        count(target)
        last = newest(gw.media)
        path = f"/media/{dialect}" if CASES[target] % 2 else "/media"
        code = gw.run(stream(gw.url(path, "ws"), messages))
        closed = gw.run(closed_after(gw.media, last), timeout=30)
        assert closed.code in CLOSE_CODES and closed.reason, closed
        assert code in CLOSE_CODES | {None}, code

    one_stream()


@pytest.mark.slow
def test_fuzz_media_streams_with_a_call_in_progress(live: tuple[LiveGateway, Unhandled]) -> None:
    gw, errors = live
    with GoodCall(gw) as good:
        for dialect in DIALECTS:
            fuzz_streams(gw, dialect)
            assert good.thread.is_alive(), "the call in progress ended"
    check_good_call(gw, good)
    # a fresh call works
    with GoodCall(gw, "MZfresh") as fresh:
        gw.run(asyncio.sleep(0.5))  # half a second of audio
    check_good_call(gw, fresh)
    check_logs(gw, errors)
    report([f"mediastream-{d}" for d in DIALECTS])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fuzz_dialect_parsers(dialect: str) -> None:
    """Straight into the parser: only ProtocolError may come out, and every event is typed."""
    target = f"parser-{dialect}"

    @fuzz_settings(100)
    @given(any_message(dialect))
    def parse(message: str | bytes) -> None:
        count(target)
        for start in (True, False):
            d = DIALECT_CLASSES[dialect]()
            if start:
                d.parse(valid_opening(dialect))
            try:
                events = d.parse(message)
            except ProtocolError as exc:
                assert str(exc)
                continue
            assert isinstance(events, list)
        try:
            detect(message)
        except ProtocolError as exc:
            assert str(exc)

    parse()
    report([target])


def valid_opening(dialect: str) -> str:
    from fuzz_http import valid_messages

    opening = [m for m in valid_messages(dialect)[0] if isinstance(m, str)]
    return opening[-1]


@pytest.mark.slow
def test_fuzz_webhook_and_webrtc_offers_with_a_call_in_progress(live: tuple[LiveGateway, Unhandled]) -> None:
    gw, errors = live
    valid_sdp = gw.run(webrtc_offer())
    with GoodCall(gw) as good:

        @fuzz_settings(60)
        @given(webhook_bodies())
        def webhook(case: tuple[bytes, str]) -> None:
            count("twiml-webhook")
            body, ctype = case
            code, text = gw.run(post(gw.url("/twilio/voice"), body, ctype))
            assert code in (200, 400, 403, 413, 415), (code, text[:500])
            if code == 200:
                assert text.startswith("<?xml") and "<Stream url=" in text

        webhook()

        @fuzz_settings(40)
        @given(offer_bodies(valid_sdp))
        def offer(body: bytes) -> None:
            count("webrtc-offer")
            code, text = gw.run(post(gw.url("/webrtc/offer"), with_token(gw, body), "application/json"))
            assert code in (200, 400, 401, 413), (code, text[:500])
            reply = json.loads(text)
            if code == 200:
                assert reply["type"] == "answer" and reply["sdp"].startswith("v=0")
                hung = gw.run(post(gw.url("/webrtc/hangup"), json.dumps({"id": reply["id"]}).encode(), ""))
                assert hung[0] == 200
            else:
                assert reply["error"]

        offer()
        assert good.thread.is_alive(), "the call in progress ended"
    check_good_call(gw, good)
    code, _ = gw.run(
        post(gw.url("/twilio/voice"), b"CallSid=CA1&To=%2B1555", "application/x-www-form-urlencoded")
    )
    assert code == 200
    code, text = gw.run(
        post(
            gw.url("/webrtc/offer"),
            with_token(gw, json.dumps({"sdp": valid_sdp, "type": "offer"}).encode()),
            "",
        )
    )
    assert code == 200, text
    check_logs(gw, errors)
    report(["twiml-webhook", "webrtc-offer"])


def with_token(gw: LiveGateway, body: bytes) -> bytes:
    """The body with an offer token for the agent it asks for, where it is a JSON object without one,
    so that the cases reach the offer's parsing (a missing or bad token is refused first: 401)."""
    try:
        offer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(offer, dict) or "token" in offer:
        return body
    offer["token"], _ = gw.webrtc.tokens.mint(str(offer.get("agent") or ""))
    return json.dumps(offer).encode()


async def webrtc_offer() -> str:
    """A browser-like offer (aiortc: audio sendrecv and an `events` data channel)."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()
