"""Small async interfaces every STT / LLM / TTS backend implements.

Times are seconds on the call's timeline (0 = first caller sample of the call), so transcripts line
up with VAD and the TurnEngine. Audio is int16 numpy at an explicit sample rate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from gateway.audio.frames import Pcm
from gateway.turns.events import Word

__all__ = ["Pcm"]  # re-exported: backends and their callers name it from here too


class BackendError(RuntimeError):
    """A backend failed (timeout, HTTP error, malformed answer); the call goes on without it."""


class BackendTimeout(BackendError):
    """A backend missed a deadline (it may still be connected, sending nothing or keep-alives)."""


T = TypeVar("T")


async def within_deadlines(
    stream: AsyncIterator[T], what: str, *, first: float | None = None, total: float | None = None
) -> AsyncIterator[T]:
    """`stream`'s items, raising `BackendTimeout` when the first takes more than `first` seconds or
    all of them more than `total`. Only time spent waiting on `stream` counts (not the consumer's
    work between items). On a deadline, or when the consumer stops early, `stream` is closed, which
    aborts the request."""
    loop = asyncio.get_running_loop()
    waited = 0.0
    got_first = False
    try:
        while True:
            limits = []
            if total is not None:
                limits.append(total - waited)
            if first is not None and not got_first:
                limits.append(first - waited)
            limit = max(0.0, min(limits)) if limits else None
            started = loop.time()
            try:
                item = await asyncio.wait_for(anext(stream), limit)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not got_first and first is not None and (total is None or first <= total):
                    raise BackendTimeout(f"{what}: nothing within {first:g} s") from None
                raise BackendTimeout(f"{what}: not finished within {total:g} s") from None
            waited += loop.time() - started
            got_first = True
            yield item
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


@dataclass
class Usage:
    """What a backend consumed, per call and provider (the `usage` table)."""

    provider: str
    model: str = ""
    requests: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


# -- STT --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SttCapabilities:
    streaming: bool
    aligned_transcript: bool
    languages: tuple[str, ...] = ("en",)


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    final: bool
    end_of_utterance: bool = False
    # Seconds from the end of the utterance's audio (VAD end) to this result, when measurable.
    latency: float | None = None

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@runtime_checkable
class SttStream(Protocol):
    def push(self, pcm: Pcm) -> None:
        """Every caller frame from the start of the call, in order (silence included)."""

    def end_of_speech(self, onset: float, end: float) -> None:
        """VAD saw an utterance from `onset` to `end`: batch engines transcribe that span now."""

    def results(self) -> AsyncIterator[Transcript]:
        """Interim and final transcripts as they come; ends after `aclose()`."""

    async def aclose(self) -> None: ...


@runtime_checkable
class STT(Protocol):
    name: str
    capabilities: SttCapabilities

    def stream(self, *, sample_rate: int, language: str = "en") -> SttStream: ...

    def usage(self) -> Usage: ...


# -- LLM --------------------------------------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    # True when the caller cut this assistant message short: `content` holds only what was heard.
    interrupted: bool = False


@dataclass(frozen=True)
class ToolSchema:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class LlmDone:
    finish_reason: str = "stop"


LlmChunk = TextDelta | ToolCall | LlmDone


@runtime_checkable
class LLM(Protocol):
    name: str

    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()
    ) -> AsyncIterator[LlmChunk]:
        """Stream text deltas and tool calls; closing the iterator (or cancelling) aborts the request."""

    def usage(self) -> Usage: ...


# -- TTS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordTiming:
    """A word of synthesised speech, in seconds from the start of that synthesis."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class AudioChunk:
    pcm: Pcm
    sample_rate: int
    # Words that start inside this chunk, timed from the start of the whole synthesis.
    words: tuple[WordTiming, ...] = ()


@runtime_checkable
class TTS(Protocol):
    name: str

    def synthesize(self, text: str, *, sample_rate: int) -> AsyncIterator[AudioChunk]:
        """Audio for `text` at `sample_rate`, in chunks, first chunk as soon as possible."""

    def usage(self) -> Usage: ...
