"""`openai-tts`: OpenAI's `/v1/audio/speech` (and compatible servers), streamed as raw PCM.

YAML: `tts: {provider: openai-tts, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}",
model: gpt-4o-mini-tts, voice: alloy, speed: null, instructions: null, timeout: 10, retries: 2}`.

One request per sentence (`{"model", "input", "voice", "response_format": "pcm"}`), so the first
sentence plays while the next is synthesised; `pcm` is 24 kHz 16-bit little-endian mono, streamed
and resampled to the call rate as it arrives. The API gives no word timings: the words of a
sentence are timed over its audio by word length, and travel in the sentence's last chunk (they
are only known once the sentence's length is).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
from pydantic import Field, SecretStr

from gateway.audio.resample import StreamResampler
from gateway.backends.base import AudioChunk, BackendError
from gateway.backends.http import HttpBackend, error_text
from gateway.backends.options import ProviderOptions
from gateway.backends.tts.common import split_sentences, text_words, voiced_span, words_by_characters
from gateway.config.loader import LoadedAgent

log = logging.getLogger(__name__)

PCM_RATE = 24000


class Options(ProviderOptions):
    base_url: str = Field(default="https://api.openai.com/v1", pattern=r"^https?://")
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=3.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0)
    max_retry_after: float = Field(default=10.0, ge=0)


class OpenAITTS(HttpBackend):
    name = "openai-tts"

    def __init__(self, options: Options) -> None:
        url = options.base_url.rstrip("/") + "/audio/speech"
        super().__init__(url, options, api_key=options.api_key, model=options.model)
        self.options = options

    async def _open(self, sentence: str) -> aiohttp.ClientResponse:
        o = self.options
        body: dict[str, object] = {
            "model": o.model,
            "input": sentence,
            "voice": o.voice,
            "response_format": "pcm",
        }
        if o.speed is not None:
            body["speed"] = o.speed
        if o.instructions:
            body["instructions"] = o.instructions
        resp = await self.post(body)
        kind = resp.headers.get("Content-Type", "")
        if "json" in kind or "text/" in kind:
            detail = await error_text(resp)
            resp.release()
            raise BackendError(f"{self.name}: expected raw PCM audio, got {kind}: {detail}")
        return resp

    async def synthesize(self, text: str, *, sample_rate: int) -> AsyncIterator[AudioChunk]:
        offset = 0.0
        self._usage.characters += len(text)
        for sentence in split_sentences(text):
            resp = await self._open(sentence)
            resampler = StreamResampler(PCM_RATE, sample_rate)
            leftover = b""
            raw_samples = 0
            pieces: list[np.ndarray] = []
            try:
                async for data in resp.content.iter_any():
                    data = leftover + data
                    cut = len(data) - len(data) % 2
                    leftover = data[cut:]
                    pcm = np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
                    raw_samples += len(pcm)
                    out = resampler.process(pcm)
                    if len(out):
                        pieces.append(out)
                        yield AudioChunk(out, sample_rate)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BackendError(f"{self.name}: audio stream broken: {exc or type(exc).__name__}") from exc
            finally:
                resp.close()
            if raw_samples == 0:
                raise BackendError(f"{self.name}: empty audio for {sentence[:60]!r}")
            tail = resampler.flush()
            pieces.append(tail)
            audio = np.concatenate(pieces)
            start, end = voiced_span(audio, sample_rate)
            words = tuple(
                w.__class__(w.text, round(w.start + offset, 4), round(w.end + offset, 4))
                for w in words_by_characters(text_words(sentence), start, end)
            )
            yield AudioChunk(tail, sample_rate, words)
            duration = len(audio) / sample_rate
            self._usage.audio_seconds += duration
            offset += duration


def build(options: Options, loaded: LoadedAgent | None) -> OpenAITTS:
    return OpenAITTS(options)
