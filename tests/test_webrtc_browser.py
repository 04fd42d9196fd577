"""A real browser calls the gateway: headless chromium, fake microphone playing a WAV, softphone page.

The test asserts from the gateway's own events that the caller's speech arrived where the WAV has
it, that the agent answered with audio the page received, and that the barge-in in the WAV
stopped the agent. It screenshots the page mid-call (pytest tmp dir and tests/artifacts/).
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from statistics import median

import numpy as np
import pytest
from audio_fixtures import espeak, place
from browser_fixtures import Chromium
from session_fixtures import dental_agent_yaml, loopback_runtime
from sqlalchemy import select

from gateway.edges import webrtc
from gateway.edges.webrtc import WebRtcEdge, WebRtcSettings
from gateway.metrics import schema
from gateway.metrics.database import create_db_engine
from gateway.metrics.tables import Call, InterruptionEvent
from gateway.runtime import GatewayRuntime

ARTIFACTS = Path(__file__).parent / "artifacts"
WAV_RATE = 48000
SPEECH_AT = 4.5  # s into the caller's WAV: the barge-in
AGENT = dental_agent_yaml("browser-test", "tts: {provider: espeak-ng}\n")

pytestmark = [pytest.mark.slow]  # chromium comes from scripts/apt-packages.txt


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


class Served:
    def __init__(self, runtime: GatewayRuntime, port: int, edge: WebRtcEdge, db_url: str) -> None:
        self.runtime, self.port, self.edge, self.db_url = runtime, port, edge, db_url


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    db_url = f"sqlite:///{tmp_path / 'metrics.db'}"
    schema.upgrade(db_url)
    runtime = loopback_runtime(tmp_path, AGENT, db_url)
    metrics = runtime.metrics_service()
    await metrics.start()
    http = runtime.http_service()
    edge = webrtc.install(http.app, runtime.runner, WebRtcSettings(addresses=["127.0.0.1"]))
    await http.start()
    yield Served(runtime, http.port, edge, db_url)
    await http.stop()
    await metrics.stop()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Chromium]:
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    await chromium.stop()


async def test_browser_call_barge_in(gateway: Served, browser: Chromium, tmp_path: Path) -> None:
    caller = place(
        20.0,
        [(SPEECH_AT, espeak("hold on, stop please, I want a morning slot", voice="en-gb", rate=WAV_RATE))],
        rate=WAV_RATE,
    )
    wav = tmp_path / "caller.wav"
    write_wav(wav, caller, WAV_RATE)
    page = await browser.start(f"http://127.0.0.1:{gateway.port}/?autocall=1", wav)

    call = await asyncio.wait_for(gateway.edge.wait_call(), 30)
    seen: list[str] = []
    async with asyncio.timeout(40):
        async for message in call.feed.subscribe():
            if message["type"] == "event":
                seen.append(message["event"]["type"])
            if "stop_playout" in seen and seen.count("user_speech_end") >= 1:
                break
    shot = tmp_path / "softphone-midcall.png"
    await page.screenshot(shot, ARTIFACTS / "softphone-midcall.png")
    assert shot.stat().st_size > 10_000
    status = await page.evaluate("document.getElementById('status').textContent")
    assert status == "in call"
    await page.evaluate("document.getElementById('hangup').click()")
    await asyncio.wait_for(call.done.wait(), 20)

    events = call.observer.events
    types = [e.type for e in events]
    # the agent spoke first, and the page received that audio
    agent_start = next(e.t for e in events if e.type == "agent_speech_start")
    heard = [(t, r) for t, r in call.page_reports if t > agent_start + 0.5]
    assert heard and max(r["inbound_energy"] for _, r in heard) > 0.01
    assert max(r["rms"] for _, r in heard) > 0.005
    # the caller's speech arrived where the WAV has it (page clock: capture start -> call time)
    offsets = [r["capture_ms"] / 1000 - t for t, r in call.page_reports if r.get("capture_ms")]
    speech = next(e for e in events if e.type == "user_speech_start")
    assert abs(speech.t + median(offsets) - SPEECH_AT) < 0.6
    # ... and the barge-in stopped the agent
    assert "interruption" in types and "stop_playout" in types
    interruption = next(e for e in events if e.type == "interruption")
    assert interruption.onset >= agent_start  # type: ignore[attr-defined]
    assert call.transport.track.clears >= 1

    # the same rows as any other edge
    await gateway.runtime.writer.stop()  # type: ignore[union-attr]
    engine = create_db_engine(gateway.db_url)
    with engine.connect() as conn:
        (row,) = conn.execute(select(Call.id, Call.edge, Call.end_reason, Call.codec)).all()
        kinds = (
            conn.execute(select(InterruptionEvent.kind).where(InterruptionEvent.call_id == row.id))
            .scalars()
            .all()
        )
    engine.dispose()
    assert row.edge == "webrtc" and row.end_reason == "caller_hangup" and row.codec.lower().startswith("opus")
    assert "interruption" in kinds


async def test_browser_with_a_page_password(gateway: Served, browser: Chromium, tmp_path: Path) -> None:
    """With a page password, the page asks for it (here from its URL) before it may call."""
    gateway.edge.settings = WebRtcSettings(addresses=["127.0.0.1"], page_password="s3cret")
    wav = tmp_path / "caller.wav"
    write_wav(wav, place(6.0, [], rate=WAV_RATE), WAV_RATE)
    page = await browser.start(f"http://127.0.0.1:{gateway.port}/?autocall=1&password=s3cret", wav)
    call = await asyncio.wait_for(gateway.edge.wait_call(), 30)
    async with asyncio.timeout(30):
        while await page.evaluate("document.getElementById('status').textContent") != "in call":
            await asyncio.sleep(0.2)  # the page's state lives in another process: poll it
    await page.evaluate("document.getElementById('hangup').click()")
    await asyncio.wait_for(call.done.wait(), 20)
    assert call.transport.info.edge == "webrtc"
