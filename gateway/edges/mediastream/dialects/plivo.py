"""Plivo audio streams (`<Stream bidirectional="true">`).

Inbound: `start` (start.streamId, start.callId, start.mediaFormat {encoding audio/x-mulaw or
audio/x-l16, sampleRate}, extra_headers), `media` (base64), `dtmf`, `playedStream` (our
checkpoint was played), `clearedAudio`, `stop`. Outbound: `playAudio` {media.contentType,
sampleRate, payload}, `checkpoint` {streamId, name}, `clearAudio` {streamId}.
"""

from __future__ import annotations

from typing import Any

from gateway.edges.mediastream.dialects.base import (
    Ignored,
    Inbound,
    MarkEcho,
    Outbound,
    b64s,
    dumps,
    str_dict,
    text,
)
from gateway.edges.mediastream.dialects.common import JsonEventDialect

ENCODINGS = {"audio/x-mulaw": "mulaw", "audio/x-l16": "l16"}
CONTENT_TYPES = {"mulaw": "audio/x-mulaw", "l16": "audio/x-l16"}


def _extra_headers(value: object) -> dict[str, str]:
    """Plivo's `extra_headers`: a JSON object or a `k=v,k=v` / `k=v;k=v` string."""
    if isinstance(value, dict):
        return str_dict(value)
    if not isinstance(value, str):
        return {}
    out: dict[str, str] = {}
    for part in value.replace(";", ",").split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
    return out


class Plivo(JsonEventDialect):
    name = "plivo"
    stream_id_key = "streamId"
    stream_id_in = ("start", "message")
    call_id_key = "callId"
    media_format_key = "mediaFormat"
    encodings = ENCODINGS
    mark_event = None  # Plivo echoes a `checkpoint` as `playedStream`

    def _parameters(self, data: dict[str, Any], start: dict[str, Any]) -> dict[str, str]:
        return _extra_headers(data.get("extra_headers", start.get("extra_headers")))

    def _other_event(self, event: object, data: dict[str, Any]) -> list[Inbound] | None:
        if event in ("playedStream", "played"):
            return [MarkEcho(text(data, "name"))]
        if event == "clearedAudio":
            return [Ignored("clearedAudio acknowledgement")]
        return None

    def media(self, payload: bytes) -> list[Outbound]:
        media = {
            "contentType": CONTENT_TYPES.get(self.wire.encoding, "audio/x-mulaw"),
            "sampleRate": self.wire.rate,
            "payload": b64s(payload),
        }
        return [dumps({"event": "playAudio", "media": media})]

    def mark(self, name: str) -> Outbound:
        return dumps({"event": "checkpoint", "streamId": self.stream_id, "name": name})

    def clear(self) -> Outbound:
        return dumps({"event": "clearAudio", "streamId": self.stream_id})
