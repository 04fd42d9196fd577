"""The OpenAI TTS vs a local `/v1/audio/speech` server streaming raw 24 kHz PCM (as the docs describe)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from gateway.backends.base import AudioChunk, BackendError
from gateway.backends.tts.openai import OpenAITTS, Options
from tests.backend_fixtures import serving_post


class Speech:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 600:  # a 200 with a JSON body instead of audio
            return web.json_response({"error": {"message": "bad voice"}})
        if status == 601:
            return web.Response(body=b"", content_type="application/octet-stream")
        if status != 200:
            return web.json_response(
                {"error": {"message": "busy"}}, status=status, headers={"Retry-After": "0"}
            )
        if self.gate is not None and len(self.bodies) > 1:
            await asyncio.wait_for(self.gate.wait(), 10)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        n = 12000  # 0.5 s at 24 kHz
        pcm = (np.sin(np.arange(n) * 2 * np.pi * 440 / 24000) * 8000).astype("<i2").tobytes()
        for i in range(0, len(pcm), 4801):  # odd piece sizes: samples split across writes
            await resp.write(pcm[i : i + 4801])
        return resp


@pytest.fixture
async def speech() -> AsyncIterator[tuple[Speech, str]]:
    s = Speech()
    async with serving_post("/v1/audio/speech", s.handle) as url:
        yield s, url + "/v1"


def tts(url: str, **kw: object) -> OpenAITTS:
    return OpenAITTS(Options.model_validate({"base_url": url, "api_key": "sk", "retry_backoff": 0, **kw}))


async def test_sentences_stream_at_the_call_rate(speech: tuple[Speech, str]) -> None:
    s, url = speech
    s.gate = asyncio.Event()  # the second sentence is held back until the first one's audio arrived
    backend = tts(url, voice="nova")
    chunks: list[AudioChunk] = []
    async for c in backend.synthesize("Hello there. We have Tuesday at nine.", sample_rate=8000):
        chunks.append(c)
        s.gate.set()
    await backend.aclose()
    assert [b["input"] for b in s.bodies] == ["Hello there.", "We have Tuesday at nine."]
    assert s.bodies[0] == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there.",
        "voice": "nova",
        "response_format": "pcm",
    }
    assert all(c.sample_rate == 8000 for c in chunks)
    total = sum(len(c.pcm) for c in chunks)
    assert abs(total - 8000) <= 4  # two sentences of 0.5 s
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == ["Hello", "there.", "We", "have", "Tuesday", "at", "nine."]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and words[2].start >= 0.5 - 1e-3 and words[-1].end <= 1.0 + 1e-3
    assert backend.usage().characters == len("Hello there. We have Tuesday at nine.")


async def test_retries_then_audio(speech: tuple[Speech, str]) -> None:
    s, url = speech
    s.statuses = [503, 429]
    chunks = [c async for c in tts(url).synthesize("Hi.", sample_rate=16000)]
    assert sum(len(c.pcm) for c in chunks) == pytest.approx(8000, abs=4)
    assert len(s.bodies) == 3


@pytest.mark.parametrize(
    ("status", "message"), [(600, "expected raw PCM audio"), (601, "empty audio"), (400, "HTTP 400")]
)
async def test_errors(speech: tuple[Speech, str], status: int, message: str) -> None:
    s, url = speech
    s.statuses = [status]
    with pytest.raises(BackendError, match=message):
        async for _ in tts(url).synthesize("Hi.", sample_rate=8000):
            pass
