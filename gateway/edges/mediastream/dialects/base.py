"""What every carrier dialect turns its messages into, and what it must be able to send back.

A dialect is sans-I/O: `parse()` takes one WebSocket message (text or binary) and returns
dialect-neutral events; `media()`, `mark()` and `clear()` return the messages to send. The
handler owns the socket, the transport owns the call; neither knows a carrier's field names.

Rules of the road, the same for every dialect:
- a message that is not what the dialect documents raises `ProtocolError` with a reason;
  the handler decides whether that closes the stream (before `start`) or is skipped (after);
- events a carrier documents but the gateway has no use for become `Ignored(reason)`;
- audio payloads are returned as wire bytes; decoding to PCM is the transport's job
  (`WireFormat` says how).
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gateway.audio import g711
from gateway.audio.frames import Pcm

Encoding = Literal["mulaw", "alaw", "l16"]
Outbound = str | bytes


class ProtocolError(ValueError):
    """A message the dialect cannot accept; `str(exc)` is the reason that is logged."""


@dataclass(frozen=True)
class WireFormat:
    encoding: Encoding
    rate: int

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "l16" else 1

    def encode(self, pcm: Pcm) -> bytes:
        """int16 samples -> wire bytes (L16 is little-endian, as every carrier here sends it)."""
        if self.encoding == "l16":
            return pcm.astype("<i2").tobytes()
        return g711.encode(pcm, "ulaw" if self.encoding == "mulaw" else "alaw").tobytes()

    def decode(self, payload: bytes) -> Pcm:
        """Wire bytes -> int16 samples; an odd trailing byte of L16 (half a sample) is dropped."""
        if self.encoding == "l16":
            return np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.int16)
        return g711.decode(payload, "ulaw" if self.encoding == "mulaw" else "alaw")


@dataclass(frozen=True)
class Connected:
    pass


@dataclass(frozen=True)
class Started:
    call_id: str  # the carrier's call id (CallSid, call_control_id, ...)
    stream_id: str
    wire: WireFormat
    caller: str = ""
    callee: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # custom parameters / headers


@dataclass(frozen=True)
class Media:
    payload: bytes  # wire bytes (μ-law, A-law or 16-bit little-endian PCM)


@dataclass(frozen=True)
class MarkEcho:
    name: str


@dataclass(frozen=True)
class DtmfDigit:
    digit: str


@dataclass(frozen=True)
class Stopped:
    reason: str = "caller_hangup"


@dataclass(frozen=True)
class Ignored:
    reason: str


Inbound = Connected | Started | Media | MarkEcho | DtmfDigit | Stopped | Ignored


def load_json(message: Outbound) -> dict[str, Any]:
    if isinstance(message, bytes):
        raise ProtocolError("binary message where JSON text was expected")
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"JSON message is a {type(data).__name__}, not an object")
    return data


def b64(value: Any, what: str = "media payload") -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what} is not valid base64") from None


def b64s(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"{data.get('event', 'message')!s}: '{key}' is missing or not an object")
    return value


def text(data: dict[str, Any], *keys: str, default: str = "") -> str:
    """The first of `keys` present, as a string (carriers send numbers as strings or numbers)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return default


def str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float)}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


class Dialect(ABC):
    """One carrier's media-stream protocol, for one stream."""

    name: str = ""
    # Whether the carrier echoes marks (Twilio/Telnyx/Exotel `mark`, Plivo `checkpoint`, Vonage `notify`).
    has_marks: bool = True
    # Agent audio per outbound media message, in 20 ms frames (Exotel wants >= 100 ms chunks).
    frames_per_message: int = 1

    def __init__(self) -> None:
        self.stream_id = ""
        self.wire = WireFormat("mulaw", 8000)

    @abstractmethod
    def parse(self, message: Outbound) -> list[Inbound]:
        """Events for one inbound message; raises ProtocolError for what the dialect cannot accept."""

    @abstractmethod
    def media(self, payload: bytes) -> list[Outbound]:
        """Messages that play `payload` (wire bytes) to the caller."""

    @abstractmethod
    def mark(self, name: str) -> Outbound | None:
        """A message asking the carrier to echo `name` once everything before it was played."""

    @abstractmethod
    def clear(self) -> Outbound | None:
        """A message that drops the agent audio the carrier has buffered."""

    def started(self, event: Started) -> Started:
        self.stream_id = event.stream_id
        self.wire = event.wire
        return event
