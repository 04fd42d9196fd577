"""A carrier in a box: plays caller audio into a media-stream endpoint the way a carrier does.

For tests and `bench/bench_mediastream.py`. It speaks one dialect's documented sequence
(`connected`, `start`, `media`..., `stop`; Vonage: `websocket:connected`, binary frames, close),
paces caller audio in real time (or `speed` times faster), and on the way back behaves like the
carrier's playout buffer: agent audio is queued and "played" in real time, marks are echoed when
playback reaches them, `clear` empties the buffer (pending marks are echoed at once, as Twilio
documents). It records what the gateway sent, aligned to the caller's frames by the frame label
our transport puts in each mark name, so `stereo()` is the call recording `gateway replay` takes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from gateway.audio.frames import FRAME_SECONDS, Pcm
from gateway.edges.mediastream.dialects.base import WireFormat

WIRE = {
    "twilio": WireFormat("mulaw", 8000),
    "telnyx": WireFormat("mulaw", 8000),
    "plivo": WireFormat("mulaw", 8000),
    "exotel": WireFormat("l16", 8000),
    "vonage": WireFormat("l16", 16000),
}
CHUNK_FRAMES = {"exotel": 5}  # Exotel streams ~100 ms chunks


@dataclass
class CarrierResult:
    dialect: str
    wire: WireFormat
    caller: Pcm  # what the gateway received (after the wire codec)
    agent_chunks: list[tuple[int, Pcm]] = field(default_factory=list)  # (caller frame, audio)
    marks_sent_back: int = 0
    clears: int = 0
    close_code: int | None = None
    close_reason: str = ""
    frame_lateness_ms: list[float] = field(default_factory=list)  # inbound send lateness
    # Per agent chunk: its arrival minus the moment the caller frame it was played with was sent.
    agent_delay_ms: list[float] = field(default_factory=list)

    def agent(self) -> Pcm:
        n = self.wire.rate // 50
        track = np.zeros(len(self.caller), dtype=np.int16)
        for frame, pcm in self.agent_chunks:
            start = frame * n
            end = min(len(track), start + len(pcm))
            if end > start:
                track[start:end] = pcm[: end - start]
        return track

    def stereo(self) -> Pcm:
        return np.stack([self.caller, self.agent()], axis=1)


class _Playback:
    """The carrier's outbound buffer: audio plays in real time, marks echo when reached."""

    def __init__(self, rate: int, speed: float) -> None:
        self.rate = rate
        self.speed = speed
        self.items: deque[tuple[str, Any]] = deque()  # ("audio", samples) | ("mark", name)
        self.wake = asyncio.Event()

    def clear(self) -> list[str]:
        marks = [name for kind, name in self.items if kind == "mark"]
        self.items.clear()
        self.wake.set()
        return marks

    async def run(self, echo: Any) -> None:
        while True:
            if not self.items:
                self.wake.clear()
                await self.wake.wait()
                continue
            kind, value = self.items.popleft()
            if kind == "mark":
                await echo(value)
                continue
            end = time.monotonic() + value / self.rate / self.speed
            while (left := end - time.monotonic()) > 0:
                self.wake.clear()
                try:  # playing (pacing, not synchronisation); a clear interrupts it
                    await asyncio.wait_for(self.wake.wait(), left)
                except TimeoutError:
                    break
                if not self.items and kind == "audio":
                    break


class CarrierSimulator:
    def __init__(
        self,
        url: str,
        dialect: str,
        caller: Pcm,
        *,
        speed: float = 1.0,
        parameters: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        call_id: str | None = None,
        send_stop: bool = True,
    ) -> None:
        self.url = url
        self.dialect = dialect
        self.wire = WIRE[dialect]
        self.caller = caller
        self.speed = speed
        self.parameters = parameters or {}
        self.headers = headers or {}
        self.call_id = call_id or "CA" + uuid.uuid4().hex
        self.stream_id = "MZ" + uuid.uuid4().hex
        self.send_stop = send_stop
        self._seq = 0
        self._pending_audio: list[Pcm] = []

    # -- the dialect's inbound messages ---------------------------------------------------------

    def _next(self) -> str:
        self._seq += 1
        return str(self._seq)

    def opening(self) -> list[str]:
        d, p = self.dialect, self.parameters
        if d == "twilio":
            start = {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.stream_id,
                "callSid": self.call_id,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": p,
            }
            return [
                json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
                json.dumps(
                    {
                        "event": "start",
                        "sequenceNumber": self._next(),
                        "start": start,
                        "streamSid": self.stream_id,
                    }
                ),
            ]
        if d == "telnyx":
            state = base64.b64encode("&".join(f"{k}={v}" for k, v in p.items()).encode()).decode()
            start = {
                "user_id": str(uuid.uuid4()),
                "call_control_id": self.call_id,
                "client_state": state,
                "from": p.get("from", "+15550001111"),
                "to": p.get("to", "+15550002222"),
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            }
            return [
                json.dumps({"event": "connected", "version": "1.0.0"}),
                json.dumps(
                    {
                        "event": "start",
                        "sequence_number": self._next(),
                        "start": start,
                        "stream_id": self.stream_id,
                    }
                ),
            ]
        if d == "plivo":
            start = {
                "callId": self.call_id,
                "streamId": self.stream_id,
                "accountId": "MA" + "0" * 18,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            }
            headers = ",".join(f"{k}={v}" for k, v in p.items())
            return [
                json.dumps(
                    {
                        "event": "start",
                        "sequenceNumber": int(self._next()),
                        "start": start,
                        "extra_headers": headers,
                    }
                )
            ]
        if d == "exotel":
            start = {
                "stream_sid": self.stream_id,
                "call_sid": self.call_id,
                "account_sid": "exotel-account",
                "from": p.get("from", "+919876543210"),
                "to": p.get("to", "+918047491899"),
                "custom_parameters": p,
                "media_format": {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"},
            }
            return [
                json.dumps({"event": "connected"}),
                json.dumps(
                    {
                        "event": "start",
                        "sequence_number": self._next(),
                        "stream_sid": self.stream_id,
                        "start": start,
                    }
                ),
            ]
        if d == "vonage":
            return [
                json.dumps(
                    {
                        "event": "websocket:connected",
                        "content-type": "audio/l16;rate=16000",
                        "uuid": self.call_id,
                        **p,
                    }
                )
            ]
        raise ValueError(f"unknown dialect {d!r}")

    def media(self, payload: bytes, chunk: int, timestamp_ms: int) -> str | bytes:
        d = self.dialect
        b64 = base64.b64encode(payload).decode()
        if d == "twilio":
            media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": b64}
            return json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": self._next(),
                    "media": media,
                    "streamSid": self.stream_id,
                }
            )
        if d == "telnyx":
            media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": b64}
            return json.dumps(
                {
                    "event": "media",
                    "sequence_number": self._next(),
                    "media": media,
                    "stream_id": self.stream_id,
                }
            )
        if d == "plivo":
            plivo: dict[str, Any] = {"track": "inbound", "timestamp": str(timestamp_ms), "chunk": chunk}
            plivo["payload"] = b64
            return json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": int(self._next()),
                    "streamId": self.stream_id,
                    "media": plivo,
                }
            )
        if d == "exotel":
            media = {"chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": b64}
            return json.dumps(
                {
                    "event": "media",
                    "sequence_number": self._next(),
                    "stream_sid": self.stream_id,
                    "media": media,
                }
            )
        return payload  # vonage: a binary frame

    def closing(self) -> list[str]:
        d = self.dialect
        if d == "twilio":
            stop = {"accountSid": "AC" + "0" * 32, "callSid": self.call_id}
            return [
                json.dumps(
                    {
                        "event": "stop",
                        "sequenceNumber": self._next(),
                        "streamSid": self.stream_id,
                        "stop": stop,
                    }
                )
            ]
        if d == "telnyx":
            stop = {"user_id": "u", "call_control_id": self.call_id}
            return [
                json.dumps(
                    {
                        "event": "stop",
                        "sequence_number": self._next(),
                        "stop": stop,
                        "stream_id": self.stream_id,
                    }
                )
            ]
        if d == "plivo":
            return [
                json.dumps({"event": "stop", "sequenceNumber": int(self._next()), "streamId": self.stream_id})
            ]
        if d == "exotel":
            stop = {"call_sid": self.call_id, "account_sid": "exotel-account", "reason": "callended"}
            return [
                json.dumps(
                    {
                        "event": "stop",
                        "sequence_number": self._next(),
                        "stream_sid": self.stream_id,
                        "stop": stop,
                    }
                )
            ]
        return []  # vonage hangs up by closing the socket

    def mark_echo(self, name: str) -> str:
        d = self.dialect
        if d == "twilio":
            return json.dumps(
                {
                    "event": "mark",
                    "sequenceNumber": self._next(),
                    "streamSid": self.stream_id,
                    "mark": {"name": name},
                }
            )
        if d == "telnyx":
            return json.dumps(
                {
                    "event": "mark",
                    "sequence_number": self._next(),
                    "stream_id": self.stream_id,
                    "mark": {"name": name},
                }
            )
        if d == "plivo":
            return json.dumps({"event": "playedStream", "streamId": self.stream_id, "name": name})
        if d == "exotel":
            return json.dumps(
                {
                    "event": "mark",
                    "sequence_number": self._next(),
                    "stream_sid": self.stream_id,
                    "mark": {"name": name},
                }
            )
        return json.dumps({"event": "websocket:notify", "payload": {"mark": name}})

    # -- outbound messages from the gateway -----------------------------------------------------

    def _outbound(self, message: str | bytes) -> tuple[str, Any]:
        """("audio", pcm) | ("mark", name) | ("clear", None) | ("other", data)."""
        if isinstance(message, bytes):
            return "audio", self.wire.decode(message)
        data = json.loads(message)
        event = data.get("event") or data.get("action")
        if event in ("media", "playAudio"):
            return "audio", self.wire.decode(base64.b64decode(data["media"]["payload"]))
        if event == "mark":
            return "mark", data["mark"]["name"]
        if event == "checkpoint":
            return "mark", data["name"]
        if event == "notify":
            return "mark", data["payload"]["mark"]
        if event in ("clear", "clearAudio"):
            return "clear", None
        return "other", data

    # -- the call -------------------------------------------------------------------------------

    async def run(self, session: aiohttp.ClientSession | None = None, tail: float = 0.0) -> CarrierResult:
        own = session is None
        session = session or aiohttp.ClientSession()
        n = self.wire.rate // 50
        frames = len(self.caller) // n
        caller = self.caller[: frames * n]
        wire_caller = self.wire.decode(self.wire.encode(caller))
        result = CarrierResult(self.dialect, self.wire, wire_caller)
        playback = _Playback(self.wire.rate, self.speed)
        try:
            async with session.ws_connect(self.url, headers=self.headers, max_msg_size=0) as ws:

                async def echo(name: str) -> None:
                    if not ws.closed:
                        result.marks_sent_back += 1
                        await ws.send_str(self.mark_echo(name))

                async def receive() -> None:
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break
                        kind, value = self._outbound(msg.data)
                        if kind == "audio":
                            self._pending_audio.append(value)
                            playback.items.append(("audio", len(value)))
                            playback.wake.set()
                        elif kind == "mark":
                            label = value.partition(":")[2]
                            if label.isdigit() and self._pending_audio:
                                result.agent_chunks.append((int(label), np.concatenate(self._pending_audio)))
                                sent = sent_at.get(int(label) // step * step)
                                if sent is not None:
                                    result.agent_delay_ms.append((time.monotonic() - sent) * 1000)
                            self._pending_audio = []
                            playback.items.append(("mark", value))
                            playback.wake.set()
                        elif kind == "clear":
                            result.clears += 1
                            for name in playback.clear():
                                await echo(name)
                            if self.dialect == "plivo":
                                await ws.send_str(
                                    json.dumps({"event": "clearedAudio", "streamId": self.stream_id})
                                )
                            elif self.dialect == "vonage":
                                await ws.send_str(json.dumps({"event": "websocket:cleared"}))

                step = CHUNK_FRAMES.get(self.dialect, 1)
                sent_at: dict[int, float] = {}
                receiver = asyncio.create_task(receive())
                player = asyncio.create_task(playback.run(echo))
                for opening in self.opening():
                    await ws.send_str(opening)
                period = FRAME_SECONDS * step / self.speed
                start = time.monotonic()
                for k, i in enumerate(range(0, frames, step)):
                    due = start + k * period
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # a carrier paces media in real time
                    else:
                        result.frame_lateness_ms.append(-delay * 1000)
                    if ws.closed:
                        break
                    chunk = caller[i * n : (i + step) * n]
                    sent_at[i] = time.monotonic()
                    message = self.media(self.wire.encode(chunk), k + 1, i * 20)
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    else:
                        await ws.send_str(message)
                if tail:
                    await asyncio.sleep(tail)
                if not ws.closed:
                    for closing in self.closing():
                        await ws.send_str(closing)
                    if self.dialect == "vonage" or not self.send_stop:
                        await ws.close()
                await receiver
                player.cancel()
                result.close_code = ws.close_code
                result.close_reason = ""
        finally:
            if own:
                await session.close()
        return result
