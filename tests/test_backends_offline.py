"""Real inference of the offline engines: STT on espeak-ng speech at 8 kHz, TTS at the call rate."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.backends.base import STT, TTS, AudioChunk, Transcript
from gateway.backends.registry import build_stt, build_tts
from gateway.config.schema import ProviderConfig
from tests.audio_fixtures import espeak, place

pytestmark = pytest.mark.slow

RATE = 8000


async def transcribe(stt: STT, segments: list[tuple[float, str]], length: float) -> list[Transcript]:
    """Push the call's audio frame by frame, announcing each utterance as VAD would, then close."""
    speech = [(start, espeak(text, speed=140)) for start, text in segments]
    audio = place(length, speech)
    ends = [(start, start + len(pcm) / RATE) for start, pcm in speech]
    stream = stt.stream(sample_rate=RATE)
    announced = 0
    for i in range(0, len(audio), 160):
        stream.push(audio[i : i + 160])
        now = (i + 160) / RATE
        while announced < len(ends) and now >= ends[announced][1] + 0.3:
            stream.end_of_speech(*ends[announced])
            announced += 1
    await stream.aclose()
    out = [t async for t in stream.results()]
    assert len(out) == len(segments)
    for t, (onset, end) in zip(out, ends, strict=True):
        assert t.final and t.end_of_utterance and t.latency is not None and t.latency >= 0.3
        times = [x for w in t.words for x in (w.start, w.end)]
        assert all(w.start <= w.end for w in t.words)
        assert [w.start for w in t.words] == sorted(w.start for w in t.words)
        assert times and onset - 0.2 <= min(times) and max(times) <= end + 0.2
    return out


async def test_faster_whisper_on_telephone_speech() -> None:
    stt = build_stt(ProviderConfig(provider="faster-whisper"))
    assert stt.capabilities.aligned_transcript
    out = await transcribe(stt, [(0.5, "can I come in on Wednesday"), (3.5, "my name is John Smith")], 6.5)
    first, second = (t.text.lower() for t in out)
    assert "come" in first and "wednesday" in first
    assert "name" in second and "smith" in second
    usage = stt.usage()
    assert usage.requests == 2 and 2.0 < usage.audio_seconds < 5.0


async def test_pocketsphinx_on_telephone_speech() -> None:
    phrases = ["I would like to book an appointment", "Tuesday at nine please", "my name is John Smith"]
    stt = build_stt(ProviderConfig(provider="pocketsphinx", phrases=phrases))
    out = await transcribe(stt, [(0.5, "I would like to book an appointment")], 4.0)
    words = out[0].text.lower().split()
    assert "would" in words and "like" in words and "book" in words


async def test_batch_stt_does_not_block_the_loop() -> None:
    """While the engine decodes in its worker thread, the event loop keeps running."""
    stt = build_stt(ProviderConfig(provider="faster-whisper"))
    stream = stt.stream(sample_rate=RATE)
    stream.push(place(2.5, [(0.2, espeak("hello, this is Mary Jones", speed=140))]))
    ticks = 0
    stream.end_of_speech(0.2, 2.4)
    results = stream.results()
    task = asyncio.ensure_future(anext(results))
    while not task.done():
        ticks += 1
        await asyncio.sleep(0.005)
    assert ticks >= 10  # the loop ran >= 10 times during the decode
    assert "mary jones" in task.result().text.lower()
    await stream.aclose()


TEXT = "Thank you for calling. We have Tuesday at nine, Tuesday at eleven, and Wednesday at two."


async def synthesize(tts: TTS, rate: int) -> list[AudioChunk]:
    return [c async for c in tts.synthesize(TEXT, sample_rate=rate)]


@pytest.mark.parametrize(
    "cfg",
    [
        {"provider": "espeak-ng"},
        {"provider": "espeak-ng", "engine": "binary"},
        {"provider": "piper"},
    ],
    ids=["espeak-library", "espeak-binary", "piper"],
)
@pytest.mark.parametrize("rate", [8000, 16000])
async def test_tts_audio_and_word_timings(cfg: dict, rate: int) -> None:
    tts = build_tts(ProviderConfig(**cfg))
    chunks = await synthesize(tts, rate)
    assert len(chunks) >= 2 and all(c.sample_rate == rate for c in chunks)
    pcm = np.concatenate([c.pcm for c in chunks])
    duration = len(pcm) / rate
    assert 3.0 < duration < 9.0 and np.abs(pcm.astype(np.int32)).max() > 3000
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == TEXT.split()
    assert all(0 <= w.start <= w.end <= duration + 0.01 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    # Each word starts inside the chunk that carries it (chunk start times from the samples before it).
    t = 0.0
    for c in chunks:
        end = t + len(c.pcm) / rate
        assert all(t - 1e-3 <= w.start < end + 1e-3 for w in c.words)
        t = end
    # The first sentence is a chunk of its own: audio before the rest is synthesised.
    first_sentence = [w for w in chunks[0].words]
    assert first_sentence[0].text == "Thank"


async def test_espeak_word_events_follow_the_speech() -> None:
    """Library timings come from espeak's word events: the long word takes longer than the short one."""
    tts = build_tts(ProviderConfig(provider="espeak-ng"))
    chunks = [c async for c in tts.synthesize("a extraordinarily a", sample_rate=8000)]
    words = [w for c in chunks for w in c.words]
    assert [w.text for w in words] == ["a", "extraordinarily", "a"]
    long, short = words[1].end - words[1].start, words[0].end - words[0].start
    assert long > 3 * short
