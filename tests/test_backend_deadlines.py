"""Backends that hang: fake vendors speak the wire protocol (OpenAI SSE chat, OpenAI speech, Deepgram's
WebSocket), then go quiet while keeping the connection open. The session's deadlines cut them off,
the caller hears the fallback line, and the call goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web
from audio_fixtures import espeak, place
from session_fixtures import GREETING, EspeakCliTTS, ScriptLLM, dental_agent_yaml
from websockets.asyncio.server import ServerConnection, serve

from gateway.agents import session as session_module
from gateway.agents.session import FALLBACK_LINE, Backends, CallSession, Detectors
from gateway.backends.base import BackendTimeout, within_deadlines
from gateway.backends.llm.openai_compatible import OpenAICompatibleLLM
from gateway.backends.llm.openai_compatible import Options as LlmOptions
from gateway.backends.stt.deepgram import DeepgramSTT
from gateway.backends.stt.deepgram import Options as DeepgramOptions
from gateway.backends.tts.openai import OpenAITTS
from gateway.backends.tts.openai import Options as TtsOptions
from gateway.calls import CallInfo
from gateway.config.loader import parse_agent_yaml
from gateway.edges.wavfile import WavCallerTransport
from gateway.turns.heuristics import HeuristicBargeInDetector
from gateway.turns.silero import SileroModel
from tests.backend_fixtures import serve as serve_app
from tests.test_backends_openai_llm import chunk

DEADLINES = (
    "deadlines: {llm_first_token: 1.0, llm_total: 1.5, tts_first_audio: 1.0, tts_total: 1.5, "
    "stt_result: 1.5}\n"
)


@pytest.fixture(scope="module")
def detectors() -> Detectors:
    return Detectors(vad=SileroModel(), bargein=HeuristicBargeInDetector())


# -- the wrapper -----------------------------------------------------------------------------------


async def test_within_deadlines() -> None:
    closed: list[str] = []

    async def stream(first_after: float, then_hang: bool) -> AsyncIterator[int]:
        try:
            await asyncio.sleep(first_after)
            yield 1
            if then_hang:
                await asyncio.Event().wait()
            yield 2
        finally:
            closed.append("closed")

    assert [x async for x in within_deadlines(stream(0, False), "x", first=1, total=2)] == [1, 2]
    with pytest.raises(BackendTimeout, match=r"x: nothing within 0\.05 s"):
        [x async for x in within_deadlines(stream(10, False), "x", first=0.05, total=5)]
    got = []
    with pytest.raises(BackendTimeout, match=r"y: not finished within 0\.1 s"):
        async for x in within_deadlines(stream(0, True), "y", first=0.05, total=0.1):
            got.append(x)
            await asyncio.sleep(0.2)  # the consumer's own time does not count
    assert got == [1] and closed == ["closed"] * 3  # every request was aborted


# -- the call --------------------------------------------------------------------------------------


async def run_call(
    detectors: Detectors, backends: Backends, caller: np.ndarray, extra: str = ""
) -> tuple[CallSession, WavCallerTransport]:
    agent = parse_agent_yaml(dental_agent_yaml("hang-test", extra + DEADLINES)).config
    transport = WavCallerTransport(caller, CallInfo("hang-1", "replay", "hang-test"), tail=1.0, speed=2.0)
    session = CallSession(transport, agent, detectors, backends)
    assert await asyncio.wait_for(session.run(), 60) == "caller_hangup"
    return session, transport


def two_turns() -> np.ndarray:
    return place(
        16.0,
        [
            (1.0, espeak("I would like an appointment", voice="en-gb")),
            (9.0, espeak("are you still there", voice="en-gb")),
        ],
    )


async def test_llm_that_hangs_mid_stream(detectors: Detectors) -> None:
    requests: list[int] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        requests.append(len(requests))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if len(requests) == 1:  # a sentence, then keep-alive comments forever
            await resp.write(f"data: {json.dumps(chunk({'content': 'Let me check that. '}))}\n\n".encode())
            while True:
                await resp.write(b": keep-alive\n\n")
                await asyncio.sleep(0.2)
        for text in ("Yes, ", "I am here."):
            await resp.write(f"data: {json.dumps(chunk({'content': text}))}\n\n".encode())
        await resp.write(f"data: {json.dumps(chunk(finish='stop'))}\n\ndata: [DONE]\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner, url = await serve_app(app)
    try:
        llm = OpenAICompatibleLLM(
            LlmOptions.model_validate({"base_url": f"{url}/v1", "model": "m", "timeout": 30})
        )
        session, _ = await run_call(detectors, Backends(llm=llm, tts=EspeakCliTTS()), two_turns())
        await llm.aclose()
    finally:
        await runner.cleanup()
    said = [(t, text) for t, text in session.log.agent_said if text != GREETING]
    assert [text for _, text in said][:3] == ["Let me check that.", FALLBACK_LINE, "Yes, I am here."], said
    fallback_t = said[1][0]
    assert fallback_t < 9.0  # cut off by the deadline, long before the caller spoke again


async def test_tts_that_hangs(detectors: Detectors) -> None:
    session_module._FALLBACK_AUDIO.clear()
    inputs: list[str] = []
    hang = [False]

    async def speech(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        inputs.append(body["input"])
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        tone = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 8000).astype("<i2").tobytes()
        await resp.write(tone[:4800])  # 0.1 s
        if hang[0]:  # then nothing, the connection open until the client gives up
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.1)
            return resp
        await resp.write(tone[4800:])  # 1 s a sentence
        if FALLBACK_LINE.endswith(body["input"]):
            hang[0] = True  # the fallback line is prepared (after the greeting): from now on, hang
        return resp

    app = web.Application()
    app.router.add_post("/v1/audio/speech", speech)
    runner, url = await serve_app(app)
    try:
        tts = OpenAITTS(TtsOptions.model_validate({"base_url": f"{url}/v1", "timeout": 30}))
        caller = place(22.0, [(7.0, espeak("can I book a cleaning", voice="en-gb"))])
        backends = Backends(llm=ScriptLLM(["Let me see."]), tts=tts)
        session, transport = await run_call(detectors, backends, caller)
        await tts.aclose()
    finally:
        await runner.cleanup()
    said = session.log.agent_said
    assert [text for _, text in said] == [GREETING, "Let me see.", FALLBACK_LINE], said
    # the reply's TTS hung, and so did the fallback line's; the caller heard the fallback line as the
    # TTS said it after the greeting (two sentences, 1 s each)
    agent = transport.agent_track().astype(np.float32)
    loud = np.abs(agent).reshape(-1, 160).max(axis=1) > 1000
    reply_from = round(said[1][0] / 0.02)
    assert loud[reply_from:].sum() * 0.02 >= 1.9


class SilentDeepgram:
    """Accepts the stream and reads audio, answers nothing (keep-alive pings are answered by the library)."""

    def __init__(self) -> None:
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        async for msg in ws:
            if isinstance(msg, str) and json.loads(msg).get("type") == "CloseStream":
                await ws.close()
                return


async def test_stt_websocket_that_goes_quiet(detectors: Detectors) -> None:
    fake = SilentDeepgram()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        stt = DeepgramSTT(
            DeepgramOptions.model_validate(
                {"api_key": "k", "url": f"ws://127.0.0.1:{port}/v1/listen", "keepalive": 0.5}
            )
        )
        session, _ = await run_call(detectors, Backends(stt=stt, tts=EspeakCliTTS()), two_turns())
    assert session.stt_restarts >= 1 and fake.connections >= 2
    assert FALLBACK_LINE in [text for _, text in session.log.agent_said]
