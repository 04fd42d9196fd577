"""`deepgram`: Deepgram's live streaming API over a WebSocket (or any server speaking it).

YAML: `stt: {provider: deepgram, api_key: "${DEEPGRAM_API_KEY}", model: nova-2, url:
"wss://api.deepgram.com/v1/listen", encoding: linear16, endpointing: 300, keepalive: 5,
connect_timeout: 5, retries: 2}`.

Wire protocol: `GET {url}?encoding=linear16|mulaw&sample_rate=R&channels=1&interim_results=true&...`
with `Authorization: Token KEY`; binary frames of audio up; JSON down: `{"type": "Results",
"start", "duration", "is_final", "speech_final", "channel": {"alternatives": [{"transcript",
"words": [{"word", "start", "end", "confidence", "punctuated_word"}]}]}}`, also `Metadata`,
`SpeechStarted`, `UtteranceEnd`. `{"type": "KeepAlive"}` when no audio went up for a while,
`{"type": "CloseStream"}` to finish (the server sends the last results and `Metadata`, then closes).
Deepgram's times count from the first audio byte; since the session pushes audio from the start of
the call, they are on the call timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import urlencode

import numpy as np
from pydantic import Field, SecretStr

from gateway.audio.frames import Pcm
from gateway.audio.g711 import ulaw_encode
from gateway.backends.base import BackendError, SttCapabilities, Transcript, Usage
from gateway.backends.options import ProviderOptions
from gateway.backends.stt.results import TranscriptQueue
from gateway.config.loader import LoadedAgent
from gateway.turns.events import Word

log = logging.getLogger(__name__)


class Options(ProviderOptions):
    api_key: SecretStr
    url: str = Field(default="wss://api.deepgram.com/v1/listen", pattern=r"^wss?://")
    model: str = "nova-2"
    encoding: Literal["linear16", "mulaw"] = "linear16"
    # Deepgram's own end-of-speech silence (ms) for speech_final; false disables it.
    endpointing: int | bool = 300
    punctuate: bool = True
    smart_format: bool = False
    keepalive: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0)
    # Audio held while (re)connecting, in seconds; older audio is dropped and counted.
    buffer_seconds: float = Field(default=10.0, gt=0)


_CLOSE = object()


class DeepgramSTT:
    name = "deepgram"
    capabilities = SttCapabilities(streaming=True, aligned_transcript=True, languages=("en", "multi"))

    def __init__(self, options: Options) -> None:
        self.options = options
        self._usage = Usage(provider=self.name, model=options.model)

    def url(self, sample_rate: int, language: str) -> str:
        o = self.options
        params: dict[str, str] = {
            "encoding": o.encoding,
            "sample_rate": str(sample_rate),
            "channels": "1",
            "interim_results": "true",
            "model": o.model,
            "language": language,
            "punctuate": str(o.punctuate).lower(),
            "smart_format": str(o.smart_format).lower(),
            "endpointing": str(o.endpointing).lower(),
            "vad_events": "true",
        }
        return f"{o.url}?{urlencode(params)}"

    def stream(self, *, sample_rate: int, language: str = "en") -> DeepgramStream:
        return DeepgramStream(self, sample_rate, language)

    def usage(self) -> Usage:
        return Usage(**vars(self._usage))


class DeepgramStream:
    def __init__(self, stt: DeepgramSTT, sample_rate: int, language: str) -> None:
        self._stt = stt
        self.sample_rate = sample_rate
        self.language = language
        self._audio: asyncio.Queue[bytes | object] = asyncio.Queue()
        self._queued = 0
        self.dropped_bytes = 0
        self._out = TranscriptQueue()
        self._pushed = 0  # samples
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())
        stt._usage.requests += 1

    # -- the session's side ---------------------------------------------------------------------

    def push(self, pcm: Pcm) -> None:
        if self._closed:
            return
        pcm = np.asarray(pcm, dtype=np.int16)
        self._pushed += len(pcm)
        self._stt._usage.audio_seconds += len(pcm) / self.sample_rate
        data = ulaw_encode(pcm).tobytes() if self._stt.options.encoding == "mulaw" else pcm.tobytes()
        limit = int(self._stt.options.buffer_seconds * self.sample_rate * (1 if self._is_mulaw else 2))
        self._audio.put_nowait(data)
        self._queued += len(data)
        while self._queued > limit and not self._audio.empty():
            old = self._audio.get_nowait()
            if isinstance(old, bytes):
                self._queued -= len(old)
                self.dropped_bytes += len(old)

    @property
    def _is_mulaw(self) -> bool:
        return self._stt.options.encoding == "mulaw"

    def end_of_speech(self, onset: float, end: float) -> None:
        """Deepgram finds utterance ends itself (`speech_final`): nothing to do."""

    def results(self) -> AsyncIterator[Transcript]:
        return self._out.results()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._audio.put_nowait(_CLOSE)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._stt.options.connect_timeout + 5)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the connection --------------------------------------------------------------------------

    async def _run(self) -> None:
        import websockets

        o = self._stt.options
        headers = {"Authorization": f"Token {o.api_key.get_secret_value()}"}
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    ws = await websockets.connect(
                        self._stt.url(self.sample_rate, self.language),
                        additional_headers=headers,
                        open_timeout=o.connect_timeout,
                        max_size=2**22,
                    )
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                    status = getattr(getattr(exc, "response", None), "status_code", None)
                    retry = status is None or status == 429 or status >= 500
                    if not retry or attempt > o.retries:
                        what = f"HTTP {status}" if status else str(exc) or type(exc).__name__
                        raise BackendError(f"deepgram: cannot open the stream at {o.url}: {what}") from exc
                    await asyncio.sleep(o.retry_backoff * 2 ** (attempt - 1))
                    continue
                async with ws:
                    receiver = asyncio.create_task(self._receive(ws))
                    try:
                        await self._send(ws, receiver)
                        await receiver
                    finally:
                        receiver.cancel()
                return
        except BackendError as exc:
            self._out.put(exc)
        except Exception as exc:
            self._out.put(BackendError(f"deepgram: stream failed: {exc or type(exc).__name__}"))
        finally:
            self._out.close()

    async def _send(self, ws: Any, receiver: asyncio.Task[None]) -> None:
        keepalive = self._stt.options.keepalive
        while not receiver.done():
            try:
                item = await asyncio.wait_for(self._audio.get(), keepalive)
            except TimeoutError:
                await ws.send(json.dumps({"type": "KeepAlive"}))
                continue
            if item is _CLOSE:
                await ws.send(json.dumps({"type": "CloseStream"}))
                return
            assert isinstance(item, bytes)
            self._queued -= len(item)
            await ws.send(item)

    async def _receive(self, ws: Any) -> None:
        import websockets

        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                self._handle(raw)
        except websockets.exceptions.ConnectionClosedError as exc:
            if not self._closed:
                raise BackendError(f"deepgram: connection lost: {exc}") from exc

    def _handle(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            raise BackendError(f"deepgram: malformed message, not JSON: {raw[:200]!r}") from None
        if not isinstance(msg, dict):
            raise BackendError(f"deepgram: malformed message: {raw[:200]!r}")
        kind = msg.get("type")
        if kind == "Error" or "err_code" in msg:
            raise BackendError(f"deepgram: {msg.get('description') or msg.get('err_msg') or raw[:200]}")
        if kind != "Results":
            return
        try:
            alt = msg["channel"]["alternatives"][0]
            words = tuple(
                Word(
                    str(w.get("punctuated_word") or w["word"]),
                    float(w["start"]),
                    float(w["end"]),
                )
                for w in alt.get("words", ())
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"deepgram: malformed Results message ({exc!r}): {raw[:200]}") from None
        final = bool(msg.get("is_final"))
        latency = None
        if final and words:
            latency = max(0.0, self._pushed / self.sample_rate - words[-1].end)
        self._out.put(
            Transcript(
                words=words, final=final, end_of_utterance=bool(msg.get("speech_final")), latency=latency
            )
        )


def build(options: Options, loaded: LoadedAgent | None) -> DeepgramSTT:
    return DeepgramSTT(options)
