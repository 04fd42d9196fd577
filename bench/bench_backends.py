"""Offline STT and TTS backends on telephone-band speech: accuracy, latency and CPU.

    python bench/bench_backends.py [--sentences N]

STT: sentences a dental caller says, synthesised by two voices (espeak-ng's formant voice and Piper's
neural voice), band-limited to 300-3400 Hz and sent through G.711 μ-law at 8 kHz like a phone call;
each engine gets every utterance through its real `SttStream` (push + end_of_speech). Reported: word
error rate (against the text, case and punctuation ignored), latency from end_of_speech to the
final transcript, and CPU seconds per second of audio. TTS: time to the first audio chunk and real-time factor
(synthesis time / audio duration) on the agent's lines. Ratios are against the first row.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.audio.g711 import ulaw_decode, ulaw_encode
from gateway.audio.resample import resample
from gateway.backends.registry import build_stt, build_tts
from gateway.config.loader import load_agent_config
from gateway.config.schema import ProviderConfig
from tests.audio_fixtures import espeak

RATE = 8000
CALLER = [
    "I would like to book an appointment",
    "can I come in on Wednesday",
    "Tuesday at nine please",
    "my name is John Smith",
    "do you have anything on Friday morning",
    "actually wait",
    "I need to see the dentist about a toothache",
    "thank you goodbye",
]
AGENT = [
    "Thank you for calling Bright Smile Dental, how can I help?",
    "We have Tuesday at nine, Tuesday at eleven, and Wednesday at two. Which would you like?",
    "Thank you, John Smith. You're booked for Tuesday at nine.",
]


def telephone(pcm: np.ndarray, rate: int) -> np.ndarray:
    """`pcm` at 8 kHz, band-limited to 300-3400 Hz, through μ-law and back."""
    x = resample(pcm, rate, RATE).astype(np.float64)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    y = np.clip(np.fft.irfft(spectrum, len(x)), -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(y))


def words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


async def piper_voice(texts: list[str]) -> list[np.ndarray]:
    tts = build_tts(ProviderConfig(provider="piper"))
    out = []
    for text in texts:
        chunks = [c.pcm async for c in tts.synthesize(text, sample_rate=RATE)]
        out.append(telephone(np.concatenate(chunks), RATE))
    return out


async def run_stt(cfg: ProviderConfig, utterances: list[np.ndarray]) -> tuple[list[str], list[float], float]:
    stt = build_stt(cfg)
    texts, latencies = [], []
    cpu = 0.0
    for pcm in utterances:
        stream = stt.stream(sample_rate=RATE)
        pad = np.zeros(int(0.3 * RATE), dtype=np.int16)
        audio = np.concatenate([pad, pcm, pad])
        for i in range(0, len(audio), 160):
            stream.push(audio[i : i + 160])
        start = time.process_time()
        t0 = time.perf_counter()
        stream.end_of_speech(0.3, 0.3 + len(pcm) / RATE)
        results = stream.results()
        transcript = await anext(results)
        latencies.append(time.perf_counter() - t0)
        cpu += time.process_time() - start  # worker thread's CPU counts (process time)
        texts.append(transcript.text)
        await stream.aclose()
    return texts, latencies, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=len(CALLER))
    args = parser.parse_args()
    sentences = CALLER[: args.sentences]
    voices = {
        "espeak-ng": [telephone(espeak(s, speed=150), RATE) for s in sentences],
        "piper": await piper_voice(sentences),
    }
    audio_s = {v: sum(len(p) for p in pcms) / RATE for v, pcms in voices.items()}
    dental = load_agent_config(Path(__file__).resolve().parent.parent / "config/agents/dental.yaml")
    assert dental.config.stt is not None
    engines = {
        "faster-whisper tiny.en": ProviderConfig(provider="faster-whisper"),
        "pocketsphinx": ProviderConfig(provider="pocketsphinx"),
        "pocketsphinx + dental phrases": dental.config.stt,
    }
    print(f"STT on {len(sentences)} caller sentences per voice, 8 kHz μ-law 300-3400 Hz, 1 CPU thread\n")
    print("| engine | voice | WER | latency p50 (s) | latency max (s) | CPU s / audio s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, cfg in engines.items():
        for voice, pcms in voices.items():
            texts, lat, cpu = await run_stt(cfg, pcms)
            errors = [wer(r, h) for r, h in zip(sentences, texts, strict=True)]
            rate = sum(e for e, _ in errors) / sum(n for _, n in errors)
            print(
                f"| {name} | {voice} | {rate:.0%} | {np.median(lat):.2f} | {max(lat):.2f} | "
                f"{cpu / audio_s[voice]:.2f} |"
            )
            if "-v" in sys.argv:
                for r, h in zip(sentences, texts, strict=True):
                    print(f"|   | | {r!r} -> {h!r} |")
    print(f"\nTTS on {len(AGENT)} agent lines, output at 8 kHz\n")
    print("| engine | first audio p50 (s) | real-time factor | ratio of RTF to espeak-ng library |")
    print("| --- | ---: | ---: | ---: |")
    base = None
    for name, cfg in {
        "espeak-ng (library)": ProviderConfig(provider="espeak-ng"),
        "espeak-ng (binary)": ProviderConfig(provider="espeak-ng", engine="binary"),
        "piper joe-medium": ProviderConfig(provider="piper"),
    }.items():
        tts = build_tts(cfg)
        firsts, synth, dur = [], 0.0, 0.0
        for text in AGENT:
            t0 = time.perf_counter()
            first = None
            n = 0
            async for c in tts.synthesize(text, sample_rate=RATE):
                first = first or time.perf_counter() - t0
                n += len(c.pcm)
            synth += time.perf_counter() - t0
            dur += n / RATE
            firsts.append(first or 0.0)
        rtf = synth / dur
        base = base or rtf
        print(f"| {name} | {np.median(firsts):.3f} | {rtf:.3f} | {rtf / base:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
