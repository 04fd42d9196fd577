"""Deepgram STT vs a local WebSocket server speaking the live-streaming protocol (shapes from its docs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from gateway.backends.base import BackendError, Transcript
from gateway.backends.stt.deepgram import DeepgramSTT, Options


def results(words: list[tuple[str, float, float]], final: bool, speech_final: bool) -> str:
    start = words[0][1] if words else 0.0
    return json.dumps(
        {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.0,
            "start": start,
            "is_final": final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(w for w, _, _ in words),
                        "confidence": 0.98,
                        "words": [
                            {
                                "word": w.lower(),
                                "start": a,
                                "end": b,
                                "confidence": 0.98,
                                "punctuated_word": w,
                            }
                            for w, a, b in words
                        ],
                    }
                ]
            },
            "metadata": {"request_id": "r", "model_info": {"name": "nova-2"}},
        }
    )


class FakeDeepgram:
    """Sends an interim result after 1 s of audio and a final one after 2 s; answers CloseStream."""

    def __init__(self, malformed: bool = False) -> None:
        self.query: dict[str, list[str]] = {}
        self.auth = ""
        self.bytes = 0
        self.controls: list[str] = []
        self.keepalive = asyncio.Event()
        self.malformed = malformed

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.auth = request.headers.get("Authorization", "")
        self.query = parse_qs(urlsplit(request.path).query)
        if self.auth != "Token dg-key":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid credentials\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        rate = int(self.query["sample_rate"][0])
        width = 1 if self.query["encoding"][0] == "mulaw" else 2
        sent = 0
        async for msg in ws:
            if isinstance(msg, bytes):
                self.bytes += len(msg)
                seconds = self.bytes / width / rate
                if self.malformed and seconds >= 0.5 and sent == 0:
                    await ws.send('{"type": "Results", "channel": {}}')
                    sent = 2
                if seconds >= 1.0 and sent == 0:
                    await ws.send(results([("Book", 0.5, 0.8)], final=False, speech_final=False))
                    sent = 1
                if seconds >= 2.0 and sent == 1:
                    words = [("Book", 0.5, 0.8), ("an", 0.8, 0.9), ("appointment.", 0.9, 1.5)]
                    await ws.send(results(words, final=True, speech_final=True))
                    sent = 2
                continue
            control = json.loads(msg)
            self.controls.append(control["type"])
            if control["type"] == "KeepAlive":
                self.keepalive.set()
            if control["type"] == "CloseStream":
                await ws.send(json.dumps({"type": "Metadata", "duration": self.bytes / width / rate}))
                await ws.close()
                return


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeDeepgram, str]]:
    server_state = FakeDeepgram()
    async with serve(
        server_state.handler, "127.0.0.1", 0, process_request=server_state.process_request
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield server_state, f"ws://127.0.0.1:{port}/v1/listen"


def stt(url: str, **kw: object) -> DeepgramSTT:
    return DeepgramSTT(Options.model_validate({"api_key": "dg-key", "url": url, "retry_backoff": 0.0, **kw}))


async def read_until_final(stream: object) -> list[Transcript]:
    out: list[Transcript] = []
    async for t in stream.results():  # type: ignore[attr-defined]
        out.append(t)
        if t.final:
            break
    return out


@pytest.mark.parametrize("encoding", ["linear16", "mulaw"])
async def test_streams_audio_and_reads_results(fake: tuple[FakeDeepgram, str], encoding: str) -> None:
    server, url = fake
    backend = stt(url, encoding=encoding)
    stream = backend.stream(sample_rate=8000)
    frame = (np.sin(np.arange(160) / 3) * 3000).astype(np.int16)
    for _ in range(125):  # 2.5 s of 20 ms frames
        stream.push(frame)
    got = await asyncio.wait_for(read_until_final(stream), 10)
    await stream.aclose()
    assert [t.final for t in got] == [False, True]
    final = got[-1]
    assert final.text == "Book an appointment." and final.end_of_utterance
    assert [(w.start, w.end) for w in final.words] == [(0.5, 0.8), (0.8, 0.9), (0.9, 1.5)]
    assert final.latency is not None and final.latency >= 0.5  # 2.0+ s pushed, the last word ends at 1.5 s
    assert server.query["encoding"] == [encoding] and server.query["sample_rate"] == ["8000"]
    assert server.query["interim_results"] == ["true"] and server.query["channels"] == ["1"]
    assert server.bytes == 125 * 160 * (1 if encoding == "mulaw" else 2)
    assert server.controls[-1] == "CloseStream"
    assert [t async for t in stream.results()] == []  # ended after aclose
    u = backend.usage()
    assert u.requests == 1 and u.audio_seconds == pytest.approx(2.5)


async def test_keepalive_when_no_audio(fake: tuple[FakeDeepgram, str]) -> None:
    server, url = fake
    stream = stt(url, keepalive=0.05).stream(sample_rate=8000)
    await asyncio.wait_for(server.keepalive.wait(), 10)
    await stream.aclose()
    assert "KeepAlive" in server.controls and server.controls[-1] == "CloseStream"


async def test_bad_key_is_a_clear_error(fake: tuple[FakeDeepgram, str]) -> None:
    _, url = fake
    backend = DeepgramSTT(Options.model_validate({"api_key": "wrong", "url": url}))
    stream = backend.stream(sample_rate=8000)
    with pytest.raises(BackendError, match=r"cannot open the stream .*HTTP 401"):
        await asyncio.wait_for(read_until_final(stream), 10)
    await stream.aclose()


async def test_malformed_results_message(fake: tuple[FakeDeepgram, str]) -> None:
    server, url = fake
    server.malformed = True
    stream = stt(url).stream(sample_rate=8000)
    for _ in range(50):
        stream.push(np.zeros(160, dtype=np.int16))
    with pytest.raises(BackendError, match="malformed Results message"):
        await asyncio.wait_for(read_until_final(stream), 10)
    await stream.aclose()


async def test_nothing_listening() -> None:
    stream = stt("ws://127.0.0.1:9/v1/listen", retries=1, connect_timeout=1).stream(sample_rate=8000)
    with pytest.raises(BackendError, match="cannot open the stream"):
        await asyncio.wait_for(read_until_final(stream), 10)
    await stream.aclose()
