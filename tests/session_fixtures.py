"""Parts for session tests: real espeak-ng speech as a TTS, and an LLM that follows a script; the
dental agent and the caller who backchannels, then barges in, that the end-to-end call tests share.

The TTS is the espeak-ng binary (a real engine); word timings are spread by character share. The
scripted LLM is a test double of our own LLM interface (no vendor is imitated): it answers each
user turn with the next line of its script and records what context it was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
from audio_fixtures import espeak, place

from gateway.backends.base import (
    AudioChunk,
    ChatMessage,
    LlmChunk,
    LlmDone,
    TextDelta,
    ToolSchema,
    Usage,
    WordTiming,
)
from gateway.config.schema import DatabaseConfig, GatewayConfig, HttpConfig
from gateway.runtime import GatewayRuntime

GREETING = (
    "Thank you for calling Bright Smile Dental. We have openings on Tuesday at nine, "
    "Tuesday at eleven, and Wednesday at two in the afternoon. Which one works best for you?"
)
BARGE_IN_TURN_HANDLING = """\
turn_handling:
  min_endpointing_delay: 0.5
  max_endpointing_delay: 1.5
  interruption:
    mode: adaptive
    detector: heuristic
    false_interruption_timeout: 0.6
"""


def dental_agent_yaml(agent: str, extra: str = "", *, vad_rate: int | None = None) -> str:
    """An agent file: the dental GREETING, the `extra` top-level lines, adaptive heuristic barge-in
    (and the VAD at `vad_rate`, if given)."""
    vad = f"  vad:\n    sample_rate: {vad_rate}\n" if vad_rate is not None else ""
    return f'agent: {agent}\ngreeting: "{GREETING}"\n{extra}{BARGE_IN_TURN_HANDLING}{vad}'


def backchannel_then_barge_in(rate: int = 8000) -> np.ndarray:
    """11 s of a caller who says "mm-hmm" during the greeting (3 s), then barges in for real (6 s)."""
    return place(
        11.0,
        [
            (3.0, espeak("mm-hmm", voice="en-gb", speed=170, rate=rate)),
            (6.0, espeak("hold on, stop please", voice="en-gb", rate=rate)),
        ],
        rate=rate,
    )


class EspeakCliTTS:
    name = "espeak-cli"

    def __init__(self, voice: str = "en-us", speed: int = 165) -> None:
        self.voice, self.speed = voice, speed
        self.requests = 0

    async def synthesize(self, text: str, *, sample_rate: int) -> AsyncIterator[AudioChunk]:
        self.requests += 1
        pcm = await asyncio.to_thread(espeak, text, self.voice, self.speed, 50, sample_rate)
        duration = len(pcm) / sample_rate
        words, total = text.split(), max(1, len(text))
        timings, pos = [], 0
        for word in words:
            start = text.index(word, pos)
            pos = start + len(word)
            timings.append(WordTiming(word, duration * start / total, duration * pos / total))
        yield AudioChunk(pcm, sample_rate, tuple(timings))

    def usage(self) -> Usage:
        return Usage(self.name, requests=self.requests)


class ScriptLLM:
    name = "script"

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.contexts: list[list[ChatMessage]] = []

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()
    ) -> AsyncIterator[LlmChunk]:
        self.contexts.append([ChatMessage(m.role, m.content, interrupted=m.interrupted) for m in messages])
        reply = self.replies.pop(0) if self.replies else "Okay."
        for word in reply.split(" "):
            yield TextDelta(word + " ")
        yield LlmDone()

    def usage(self) -> Usage:
        return Usage(self.name, requests=len(self.contexts))


def loopback_runtime(tmp_path: Path, agent_yaml: str, db_url: str) -> GatewayRuntime:
    """A whole gateway runtime with one default agent, HTTP on a free loopback port, metrics to
    `db_url` (its services are started by the caller)."""
    agent = tmp_path / "agent.yaml"
    agent.write_text(agent_yaml)
    config = GatewayConfig(
        default_agent=str(agent), database=DatabaseConfig(url=db_url, spool_dir=str(tmp_path / "spool"))
    ).model_copy(update={"http": HttpConfig.model_construct(host="127.0.0.1", port=0)})
    return GatewayRuntime(config, db_url)
