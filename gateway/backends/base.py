"""Small async interfaces every STT / LLM / TTS backend implements.

Times are seconds on the call's timeline (0 = first caller sample of the call), so transcripts line
up with VAD and the TurnEngine. Audio is int16 numpy at an explicit sample rate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from gateway.audio.frames import Pcm
from gateway.turns.events import Word

__all__ = ["Pcm"]  # re-exported: backends and their callers name it from here too


class BackendError(RuntimeError):
    """A backend failed (timeout, HTTP error, malformed answer); the call goes on without it."""


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
